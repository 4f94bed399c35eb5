/* SPDX-License-Identifier: MIT */
/* What the tests compare and tamper with at a site, per architecture. */
#ifndef STITCH_TEST_FTRACE_SITE_BYTES_H
#define STITCH_TEST_FTRACE_SITE_BYTES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stitch/ftrace.h"

#if defined(__x86_64__)
#define SITE_LEN 5 /* the NOP(s) <-> call */
#else
#define SITE_LEN 4 /* the NOP <-> BL / JALR */
#endif

/*
 * Whether `cur` (SITE_LEN bytes at the site) is a disabled site whose
 * compiler bytes were `orig`: those bytes, or on x86-64 the one 5-byte NOP
 * that replaces gcc's five 1-byte NOPs at their first enable or
 * stitch_ftrace_prepare() (docs/ftrace.md, "Prepared sites").
 */
static inline bool site_disabled_bytes(const uint8_t *orig, const uint8_t *cur)
{
#if defined(__x86_64__)
	static const uint8_t five_nops[5] = { 0x90, 0x90, 0x90, 0x90, 0x90 };
	static const uint8_t nop5[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
	if (memcmp(orig, five_nops, 5) == 0 && memcmp(cur, nop5, 5) == 0)
		return true;
#endif
	return memcmp(orig, cur, SITE_LEN) == 0;
}

/*
 * Every site's info (stitch_ftrace_site_info) and its SITE_LEN bytes as
 * they are now, in two arrays of n the caller frees; 0, or -1 if an
 * allocation or an info call failed.
 */
static inline int site_snapshot(size_t n, struct stitch_ftrace_site_info **info, uint8_t (**orig)[SITE_LEN])
{
	*info = calloc(n ? n : 1, sizeof(**info));
	*orig = calloc(n ? n : 1, sizeof(**orig));
	if (!*info || !*orig)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (stitch_ftrace_get_site_info(i, &(*info)[i]) != 0)
			return -1;
		memcpy((*orig)[i], (const void *)(*info)[i].site, SITE_LEN);
	}
	return 0;
}

/* Change a site behind the library's back to another harmless form; returns 0 on success. */
static inline int tamper_site(uintptr_t site, uint8_t saved[SITE_LEN])
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t page = site & ~(uintptr_t)(pg - 1);
	memcpy(saved, (const void *)site, SITE_LEN);
	if (mprotect((void *)page, 2 * (size_t)pg, PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
		return -1;
#if defined(__x86_64__)
	if (saved[0] == 0x90)
		((volatile uint8_t *)site)[0] = 0x66; /* 66 90: xchg %ax,%ax, then three nops */
	else
		((volatile uint8_t *)site)[4] ^= 0x10; /* another nopl displacement */
#elif defined(__aarch64__)
	uint32_t yield = 0xd503203f; /* AArch64 YIELD (a hint, like NOP) */
	memcpy((void *)site, &yield, 4);
#else
	uint32_t hint = 0x00100013; /* RISC-V addi x0, x0, 1 (a HINT, like NOP) */
	memcpy((void *)site, &hint, 4);
#endif
	__builtin___clear_cache((char *)site, (char *)site + SITE_LEN);
	return mprotect((void *)page, 2 * (size_t)pg, PROT_READ | PROT_EXEC);
}

static inline int untamper_site(uintptr_t site, const uint8_t saved[SITE_LEN])
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t page = site & ~(uintptr_t)(pg - 1);
	if (mprotect((void *)page, 2 * (size_t)pg, PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
		return -1;
	memcpy((void *)site, saved, SITE_LEN);
	__builtin___clear_cache((char *)site, (char *)site + SITE_LEN);
	return mprotect((void *)page, 2 * (size_t)pg, PROT_READ | PROT_EXEC);
}

#endif
