/* SPDX-License-Identifier: MIT */
/* Built without the trace flags: record must say which flags to add. */
#include <stdio.h>

int main(void)
{
	printf("plain\n");
	return 0;
}
