/* SPDX-License-Identifier: MIT */
/*
 * Far targets for static-call tests: a small stub, mapped more than 4 GiB
 * away from the program's text, that jumps to a given function through an
 * absolute literal.  Calling the stub is calling the function, but no
 * direct branch (and no ADRP) from the trampoline can reach it.
 */
#ifndef STITCH_TEST_FAR_THUNK_H
#define STITCH_TEST_FAR_THUNK_H

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define FAR_DISTANCE (64ull << 30) /* 64 GiB */

/*
 * Map one page about `distance` bytes above (or below) near_addr; index
 * spreads several pages 4 MiB apart.  NULL if it lands closer than
 * distance / 2.
 */
static inline uint8_t *far_page(uintptr_t near_addr, uint64_t distance, unsigned index)
{
	uintptr_t want[2] = { near_addr + distance + ((uintptr_t)index << 22),
			      near_addr - distance - ((uintptr_t)index << 22) };
	for (int i = 0; i < 2; i++) {
		uintptr_t a = want[i] & ~(uintptr_t)0xfff;
		void *p = mmap((void *)a, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			continue;
		uintptr_t d = (uintptr_t)p > near_addr ? (uintptr_t)p - near_addr : near_addr - (uintptr_t)p;
		if (d > distance / 2 && d < distance * 2)
			return p;
		munmap(p, 4096);
	}
	return NULL;
}

/* Write a stub at page + offset (16-aligned) that jumps to fn. */
static inline void *far_stub(uint8_t *page, unsigned offset, void *fn)
{
	uint8_t *s = page + offset;
	uint64_t a = (uint64_t)(uintptr_t)fn;
#if defined(__x86_64__)
	static const uint8_t code[8] = { 0xff, 0x25, 0x02, 0, 0, 0, 0xcc, 0xcc }; /* jmp *2(%rip) */
	memcpy(s, code, 8);
	memcpy(s + 8, &a, 8);
#elif defined(__aarch64__)
	uint32_t w[2] = { 0x58000050u /* ldr x16, #8 */, 0xd61f0200u /* br x16 */ };
	memcpy(s, w, 8);
	memcpy(s + 8, &a, 8);
#elif defined(__riscv)
	uint32_t w[4] = { 0x00000317u /* auipc t1, 0 */, 0x01033303u /* ld t1, 16(t1) */,
			  0x00030067u /* jr t1 */, 0x00000013u };
	memcpy(s, w, 16);
	memcpy(s + 16, &a, 8);
#endif
	return s;
}

static inline int far_seal(uint8_t *page)
{
	__builtin___clear_cache((char *)page, (char *)page + 4096);
	return mprotect(page, 4096, PROT_READ | PROT_EXEC);
}

#endif
