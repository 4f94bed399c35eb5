/* SPDX-License-Identifier: MIT */
/* dlopen: a traced library's functions are traced from its first call. */
#include <dlfcn.h>
#include <stdio.h>

int load_and_call(const char *path);

int load_and_call(const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return -1;
	}
	int (*entry)(int) = (int (*)(int))dlsym(h, "lib_entry");
	int r = entry ? entry(3) : -1;
	dlclose(h);
	return r;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	int r = load_and_call(argv[1]);
	printf("dlopen %d\n", r);
	return r == 8 ? 0 : 1;
}
