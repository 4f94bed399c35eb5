/* SPDX-License-Identifier: MIT */
int lib_entry(int x);

static int lib_helper(int x)
{
	return x + 1;
}

int lib_entry(int x)
{
	return lib_helper(x) * 2;
}
