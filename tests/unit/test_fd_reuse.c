/* SPDX-License-Identifier: MIT */
/*
 * A program that closes every descriptor above 2 (the library's
 * /proc/self/mem among them) and then opens files of its own, which get the
 * freed numbers, must not find code written into those files, and its
 * static keys must still switch: the library checks its descriptor before
 * each batch and opens a new one (src/core/text.c, procmem_open).  Before
 * that, the key's code bytes were written into the file that took the
 * library's number, at the offset of their address.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stitch/static_key.h>
#include <stitch/stitch.h>

#include "common/check.h"

STITCH_DEFINE_STATIC_KEY_FALSE(key);
static __attribute__((noinline)) int site(void)
{
	return stitch_static_branch_unlikely(&key) ? 1 : 0;
}

#define NFILES 600 /* past the library's floor of 512 */
static const char content[] = "user data\n";

int main(void)
{
	CHECK(stitch_init() == 0, "init: %s", stitch_last_error());
	CHECK_EQ(stitch_static_key_enable(&key), 0);
	CHECK_EQ(site(), 1);
	CHECK_EQ(stitch_static_key_disable(&key), 0);

	char dir[] = "/tmp/stitch-fd-reuse.XXXXXX";
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	for (int fd = 3; fd < 4096; fd++) /* as close_range(3, ~0U, 0) */
		close(fd);
	static int fds[NFILES];
	for (int i = 0; i < NFILES; i++) {
		char path[64];
		snprintf(path, sizeof(path), "%s/f%d", dir, i);
		fds[i] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		CHECK(fds[i] >= 0 && write(fds[i], content, sizeof(content) - 1) == (ssize_t)sizeof(content) - 1,
		      "file %d", i);
	}

	for (int i = 0; i < 10; i++) {
		CHECK(stitch_static_key_enable(&key) == 0, "enable: %s", stitch_last_error());
		CHECK_EQ(site(), 1);
		CHECK(stitch_static_key_disable(&key) == 0, "disable: %s", stitch_last_error());
		CHECK_EQ(site(), 0);
	}

	int touched = 0;
	for (int i = 0; i < NFILES; i++) {
		struct stat st;
		char buf[sizeof(content)] = { 0 };
		if (fstat(fds[i], &st) != 0 || st.st_size != (off_t)sizeof(content) - 1 ||
		    pread(fds[i], buf, sizeof(buf) - 1, 0) != (ssize_t)sizeof(content) - 1 || strcmp(buf, content) != 0) {
			if (!touched++)
				printf("file f%d (descriptor %d): %lld bytes\n", i, fds[i], (long long)st.st_size);
		}
		close(fds[i]);
		char path[64];
		snprintf(path, sizeof(path), "%s/f%d", dir, i);
		unlink(path);
	}
	rmdir(dir);
	CHECK_EQ(touched, 0);
	return check_summary("test_fd_reuse");
}
