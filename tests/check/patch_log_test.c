/* SPDX-License-Identifier: MIT */
/*
 * Records two operations through the patch-log hooks exactly as the patch
 * engine announces them, using the library's encoders for the bytes:
 *   1. an x86 static key enabled with the int3 protocol (must check SAFE);
 *   2. the same enable done with one plain 5-byte store (must check UNSAFE,
 *      although the log, written by the library, claims SAFE).
 * usage: patch_log_test DIR   (then run stitch-check on DIR/\*.model)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/insn.h"
#include "core/patch_log.h"

static uint8_t site_a[8], site_b[8];

int main(int argc, char **argv)
{
	uint8_t nop5[5], jmp[5];

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	setenv("STITCH_PATCH_LOG", argv[1], 1);
	if (x86_encode_nop(nop5, 5))
		return 1;

	/* 1: int3 protocol (text_poke_bp order) */
	uintptr_t a = (uintptr_t)site_a;
	if (x86_encode_jmp_rel32(jmp, a, a + 0x40))
		return 1;
	stitch_patch_log_begin("static_key enable (int3)");
	stitch_patch_log_site(a, nop5, 5);
	stitch_patch_log_store(a, (const uint8_t *)"\xcc", 1);
	stitch_patch_log_sync();
	stitch_patch_log_store(a + 1, jmp + 1, 4);
	stitch_patch_log_sync();
	stitch_patch_log_store(a, jmp, 1);
	stitch_patch_log_sync();
	stitch_patch_log_end(0);

	/* 2: a plain store of all five bytes */
	uintptr_t b = (uintptr_t)site_b;
	if (x86_encode_jmp_rel32(jmp, b, b + 0x40))
		return 1;
	stitch_patch_log_begin("static_key enable (plain store)");
	stitch_patch_log_site(b, nop5, 5);
	stitch_patch_log_store(b, jmp, 5);
	stitch_patch_log_sync();
	stitch_patch_log_end(0);
	return 0;
}
