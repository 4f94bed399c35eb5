/* SPDX-License-Identifier: MIT */
/* Direct recursion and mutual recursion. */
#include <stdio.h>

int fact(int n);
int is_even(unsigned n);
int is_odd(unsigned n);

int fact(int n)
{
	return n <= 1 ? 1 : n * fact(n - 1);
}

int is_even(unsigned n)
{
	return n == 0 ? 1 : is_odd(n - 1);
}

int is_odd(unsigned n)
{
	return n == 0 ? 0 : is_even(n - 1);
}

int main(void)
{
	/* one call per statement: argument order is unspecified in C */
	int f = fact(4);
	int e = is_even(5);
	printf("recursion %d %d\n", f, e);
	return 0;
}
