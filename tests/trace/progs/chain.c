/* SPDX-License-Identifier: MIT */
/* Call chains, a call through a function pointer, a static function. */
#include <stdio.h>

int leaf(int x);
int middle(int x);
int top(int x);
int apply(int (*fn)(int), int x);
int via_pointer(int x);

int leaf(int x)
{
	return x + 1;
}

static int helper_static(int x)
{
	return leaf(x) * 2;
}

int middle(int x)
{
	int h = helper_static(x); /* before leaf(): + does not order its operands */
	return h + leaf(x);
}

int top(int x)
{
	return middle(x) + middle(x + 1);
}

int apply(int (*fn)(int), int x)
{
	return fn(x);
}

int via_pointer(int x)
{
	return x * 3;
}

int main(void)
{
	int sum = 0;
	for (int i = 0; i < 3; i++)
		sum += top(i);
	int (*volatile fp)(int) = via_pointer;
	sum += apply(fp, 4);
	printf("chain %d\n", sum);
	return 0;
}
