/* SPDX-License-Identifier: MIT */
/*
 * Every error path of the patching engine returns a readable error and
 * leaves the code byte-identical: old-bytes mismatch, misaligned site,
 * out-of-range target, unknown instruction at a site, a patch outside
 * code, a page whose protection cannot be changed, an instruction change
 * the architecture does not allow live.
 */
#include <fcntl.h>
#include <stitch/static_key.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/arch.h"
#include "common/arch_bytes.h"
#include "common/check.h"
#include "common/key_sites.h"
#include "core/internal.h"

STITCH_DEFINE_STATIC_KEY_FALSE(key_a);

#define NOINLINE __attribute__((noinline))
static NOINLINE int site_a1(void) { return stitch_static_branch_unlikely(&key_a) ? 1 : 0; }
static NOINLINE int site_a2(void) { return stitch_static_branch_likely(&key_a) ? 1 : 0; }

static uint8_t snapshot[2][SITE_LEN];

static void take_snapshot(const struct test_key_group *g)
{
	for (size_t i = 0; i < g->count; i++)
		memcpy(snapshot[i], (const void *)g->sites[i].where.code, SITE_LEN);
}

static int unchanged(const struct test_key_group *g)
{
	for (size_t i = 0; i < g->count; i++)
		if (memcmp(snapshot[i], (const void *)g->sites[i].where.code, SITE_LEN) != 0)
			return 0;
	return 1;
}

/* Write bytes into code through the engine (single-threaded test). */
static int poke(uintptr_t addr, const uint8_t *bytes, size_t len)
{
	struct stitch_patch p = { .addr = addr, .len = (uint8_t)len };
	memcpy(p.new_bytes, bytes, len);
	int err = stitch_text_open(&p, 1);
	if (!err)
		err = stitch_text_store(addr, bytes, len);
	if (!err)
		err = stitch_text_close();
	if (!err)
		err = stitch_text_sync(&p, 1);
	return err;
}

static int apply_one(uintptr_t addr, const uint8_t *old, const uint8_t *new_bytes, size_t len)
{
	struct stitch_batch b;
	stitch_batch_init(&b);
	int err = stitch_batch_add(&b, addr, old, new_bytes, len);
	if (!err) {
		stitch_update_lock();
		err = stitch_batch_apply_locked(&b);
		stitch_update_unlock();
	}
	stitch_batch_free(&b);
	return err;
}

/*
 * Plant `bytes` at one site of key_a: enabling the key is refused with
 * -STITCH_EUNKNOWN (a message holding `in_message`), no site changes, the
 * key stays off; with the site put back, enable and disable work again.
 */
static void refused_with(struct test_key_group *g, uintptr_t site, const uint8_t *bytes, size_t len, const char *what,
			 const char *in_message)
{
	uint8_t saved[SITE_LEN];
	memcpy(saved, (const void *)site, SITE_LEN);
	CHECK_EQ(poke(site, bytes, len), 0);
	take_snapshot(g);
	int err = stitch_static_key_enable(&key_a);
	CHECK_EQ(err, -STITCH_EUNKNOWN);
	printf("%s: %s\n", what, stitch_last_error());
	CHECK(strstr(stitch_last_error(), in_message) != NULL, "%s: the message says '%s': %s", what, in_message,
	      stitch_last_error());
	CHECK(unchanged(g), "%s: no site changed", what);
	CHECK(!stitch_static_key_enabled(&key_a), "%s: key value unchanged on error", what);
	CHECK_EQ(poke(site, saved, SITE_LEN), 0);
	take_snapshot(g);
	CHECK_EQ(stitch_static_key_enable(&key_a), 0);
	CHECK_EQ(site_a1() + site_a2(), 2);
	CHECK_EQ(stitch_static_key_disable(&key_a), 0);
	CHECK(unchanged(g), "%s: enable+disable restores the exact bytes", what);
}

int main(void)
{
	CHECK(stitch_init() == 0, "init: %s", stitch_last_error());
	printf("write backend: %s\n", stitch_backend_name());
	struct test_key_group g;
	g = test_key_group(&key_a.key);
	CHECK_EQ(g.count, 2);
	CHECK_EQ(site_a1() + site_a2(), 0);
	take_snapshot(&g);

	/* 1. Old-bytes mismatch: nothing written, both byte strings reported. */
	{
		struct stitch_patch p;
		CHECK_EQ(arch_jump_label_patch(&g.sites[0].where, true, &p), 0);
		p.old[0] ^= 0xff;
		int err = apply_one(p.addr, p.old, p.new_bytes, p.len);
		CHECK_EQ(err, -STITCH_EMISMATCH);
		CHECK(strstr(stitch_last_error(), "expected") && strstr(stitch_last_error(), "found"), "message: %s",
		      stitch_last_error());
		CHECK(unchanged(&g), "site bytes unchanged after a mismatch");
	}

	/* 2. Unknown instruction at one site of the key: the update is refused
	 * as a whole, the other site is not touched either. */
	refused_with(&g, g.sites[1].where.code, foreign_insn, sizeof(foreign_insn), "unknown instruction", "expected");

#if defined(__x86_64__)
	/* 2b. A 5-byte site whose head was overwritten by a 2-byte NOP: the
	 * bytes are a well-formed 2-byte site, but this site is 5 bytes long
	 * (until 2026-11-28 it was patched as a 2-byte one). */
	{
		static const uint8_t nop2_int3[SITE_LEN] = { 0x66, 0x90, 0xcc, 0xcc, 0xcc };
		static const uint8_t nop5[SITE_LEN] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
		size_t i = memcmp((const void *)g.sites[0].where.code, nop5, SITE_LEN) == 0 ? 0 : 1;
		CHECK(memcmp((const void *)g.sites[i].where.code, nop5, SITE_LEN) == 0, "site_a1's site is a 5-byte NOP");
		CHECK_EQ(g.sites[i].where.len, 5);
		refused_with(&g, g.sites[i].where.code, nop2_int3, SITE_LEN, "shortened site", "5-byte");
	}
#endif

	/* 3. Misaligned site (or, on x86, a site in the middle of an instruction). */
	{
		struct stitch_jump_site bad = g.sites[0].where;
		struct stitch_patch p;
		bad.code += 2;
		int err = arch_jump_label_patch(&bad, true, &p);
#if defined(__x86_64__)
		CHECK_EQ(err, -STITCH_EUNKNOWN);
#else
		CHECK_EQ(err, -STITCH_EALIGN);
		/* And through the engine: a misaligned 4-byte patch. */
		uint8_t cur[4];
		memcpy(cur, (const void *)bad.code, 4);
		err = apply_one(bad.code, cur, foreign_insn, 4);
		CHECK_EQ(err, -STITCH_EALIGN);
#endif
		printf("misaligned site: %s\n", stitch_last_error());
		CHECK(unchanged(&g), "site bytes unchanged after a misaligned request");
	}

	/* 4. Target out of range of the site's branch. */
	{
		struct stitch_jump_site far = g.sites[0].where;
		struct stitch_patch p;
		far.target = far.code + FAR_AWAY;
		int err = arch_jump_label_patch(&far, true, &p);
		CHECK_EQ(err, -STITCH_ERANGE);
		printf("out of range: %s\n", stitch_last_error());
		CHECK(unchanged(&g), "site bytes unchanged after an out-of-range target");
	}

	/* 5. Patches outside executable code: heap data and an unmapped page. */
	{
		static uint8_t data[16];
		uint8_t zero[SITE_LEN] = { 0 };
		CHECK_EQ(apply_one((uintptr_t)data, zero, foreign_insn, SITE_LEN), -STITCH_EPROTECT);
		CHECK(memcmp(data, zero, SITE_LEN) == 0, "data untouched");
		void *hole = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		munmap(hole, 4096);
		CHECK_EQ(apply_one((uintptr_t)hole, zero, foreign_insn, SITE_LEN), -STITCH_EPROTECT);
		printf("unmapped: %s\n", stitch_last_error());
	}

	/* 6. Code whose page cannot be made writable: a read-only shared file
	 * mapping (mprotect(PROT_WRITE) fails with EACCES, and /proc/self/mem
	 * cannot write a shared page the file does not let us write). */
	{
		char path[] = "/tmp/stitch-test-XXXXXX";
		int fd = mkstemp(path);
		CHECK(fd >= 0, "mkstemp");
		uint8_t page[4096];
		memset(page, 0, sizeof(page));
		memcpy(page, foreign_insn, sizeof(foreign_insn));
		CHECK(write(fd, page, sizeof(page)) == (ssize_t)sizeof(page), "write temp file");
		close(fd);
		fd = open(path, O_RDONLY);
		void *code = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
		CHECK(code != MAP_FAILED, "mmap");
		uint8_t other[SITE_LEN];
		memset(other, 0, sizeof(other));
		memcpy(other, (const void *)code, SITE_LEN);
		other[0] ^= 1;
		int err = apply_one((uintptr_t)code, foreign_insn, other, SITE_LEN);
		CHECK(err == -STITCH_EPROTECT || err == -STITCH_EUNKNOWN || err == -STITCH_EINVAL,
		      "err %d (%s)", err, stitch_last_error());
		printf("read-only mapping: %s\n", stitch_last_error());
		CHECK(memcmp(code, foreign_insn, sizeof(foreign_insn)) == 0, "read-only code unchanged");
		/* A change the protocol accepts, so that only the protection fails. */
		uint8_t nop_insn[SITE_LEN], jmp_insn[SITE_LEN];
#if defined(__x86_64__)
		static const uint8_t nop5[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
		memcpy(nop_insn, nop5, 5);
		jmp_insn[0] = 0xe9;
		uint32_t rel = 64 - 5;
		memcpy(jmp_insn + 1, &rel, 4);
#elif defined(__aarch64__)
		static const uint32_t nop = 0xd503201fu, b64 = 0x14000010u; /* b +64 */
		memcpy(nop_insn, &nop, 4);
		memcpy(jmp_insn, &b64, 4);
#else
		static const uint32_t nop = 0x00000013u, j64 = 0x0400006fu; /* jal zero, +64 */
		memcpy(nop_insn, &nop, 4);
		memcpy(jmp_insn, &j64, 4);
#endif
		/* The file holds foreign bytes, so a NOP->jump change mismatches first;
		 * write a NOP into the file itself, then retry: now only mprotect can fail. */
		int wfd = open(path, O_WRONLY);
		CHECK(pwrite(wfd, nop_insn, SITE_LEN, 0) == SITE_LEN, "pwrite");
		close(wfd);
		err = apply_one((uintptr_t)code, nop_insn, jmp_insn, SITE_LEN);
		CHECK_EQ(err, -STITCH_EPROTECT);
		printf("protection: %s\n", stitch_last_error());
		CHECK(memcmp(code, nop_insn, SITE_LEN) == 0, "read-only code unchanged");
		munmap(code, 4096);
		close(fd);
		unlink(path);
	}

#if defined(__aarch64__)
	/* 7. AArch64: a change outside the CMODX list is refused before any write. */
	{
		struct stitch_patch p;
		CHECK_EQ(arch_jump_label_patch(&g.sites[0].where, false, &p), 0);
		int err = apply_one(p.addr, p.old, foreign_insn, 4);
		CHECK_EQ(err, -STITCH_EINVAL);
		printf("cmodx: %s\n", stitch_last_error());
		CHECK(unchanged(&g), "site unchanged after a non-CMODX request");
	}
#endif
#if defined(__x86_64__)
	/* 7. x86: replacing a site with something that is not one instruction of
	 * the same length is refused (the trap could not emulate it). */
	{
		struct stitch_patch p;
		CHECK_EQ(arch_jump_label_patch(&g.sites[0].where, false, &p), 0);
		int err = apply_one(p.addr, p.old, foreign_insn, 5);
		CHECK_EQ(err, -STITCH_EUNKNOWN);
		printf("x86 multi-insn: %s\n", stitch_last_error());
		CHECK(unchanged(&g), "site unchanged");
	}
#endif
	CHECK_EQ(site_a1() + site_a2(), 0);
	return check_summary("test_patch_errors");
}
