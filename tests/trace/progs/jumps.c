/* SPDX-License-Identifier: MIT */
/* longjmp out of two traced frames: they are reported unwound. */
#include <setjmp.h>
#include <stdio.h>

static jmp_buf env;

int deeper(int x);
int jumper(int x);
int after_jump(void);
int try_it(void);

int deeper(int x)
{
	if (x > 0)
		longjmp(env, x);
	return 0;
}

int jumper(int x)
{
	return deeper(x) + 1;
}

int after_jump(void)
{
	return 5;
}

int try_it(void)
{
	volatile int r = 0;
	if (setjmp(env) == 0)
		r = jumper(2);
	else
		r = after_jump();
	return r;
}

int main(void)
{
	int r = try_it();
	printf("jumps %d\n", r);
	return r == 5 ? 0 : 1;
}
