/* SPDX-License-Identifier: MIT */
/*
 * Patch batches: queue many instruction changes, check them all, then let
 * the architecture's protocol apply them phase by phase with one sync per
 * phase however many sites there are (the kernel's _queue/_apply split).
 */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "core/internal.h"
#include "core/patch_log.h"

void (*stitch_batch_step_hook)(unsigned step);
static unsigned batch_syncs; /* syncs of the batch being applied (update lock) */
static bool batch_running;

void stitch_batch_step(unsigned step)
{
	if (stitch_batch_step_hook)
		stitch_batch_step_hook(step);
}

/* Called by stitch_text_sync(): number the protocol's steps for the hook. */
void stitch_batch_synced(void)
{
	if (batch_running)
		stitch_batch_step(++batch_syncs);
}

void stitch_batch_init(struct stitch_batch *b)
{
	memset(b, 0, sizeof(*b));
}

void stitch_batch_free(struct stitch_batch *b)
{
	free(b->patches);
	stitch_batch_init(b);
}

int stitch_batch_add(struct stitch_batch *b, uintptr_t addr, const uint8_t *old, const uint8_t *new_bytes,
		     size_t len)
{
	if (len == 0 || len > STITCH_MAX_INSN)
		return stitch_fail(STITCH_EINVAL, "patch of %zu bytes at %#lx: length must be 1..%d", len,
				   (unsigned long)addr, STITCH_MAX_INSN);
	if (b->count == b->capacity) {
		size_t cap = b->capacity ? b->capacity * 2 : 64;
		struct stitch_patch *v = realloc(b->patches, cap * sizeof(*v));
		if (!v)
			return stitch_fail(STITCH_ENOMEM, "out of memory queueing a patch");
		b->patches = v;
		b->capacity = cap;
	}
	struct stitch_patch *p = &b->patches[b->count++];
	memset(p, 0, sizeof(*p));
	p->addr = addr;
	p->len = (uint8_t)len;
	memcpy(p->old, old, len);
	memcpy(p->new_bytes, new_bytes, len);
	return 0;
}

static int cmp_patch(const void *a, const void *b)
{
	uintptr_t x = ((const struct stitch_patch *)a)->addr, y = ((const struct stitch_patch *)b)->addr;
	return x < y ? -1 : x > y;
}

/* Sort patches by address unless they are already: one pass without a
 * call per patch (a batch of 100 000 sites comes sorted). */
static void sort_patches(struct stitch_patch *p, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (p[i - 1].addr > p[i].addr) {
			qsort(p, n, sizeof(*p), cmp_patch);
			return;
		}
}

/*
 * The patch log's site for p (old bytes: p's own, or `old`/`len` for
 * several adjacent patches starting at p), preceded by the p->lead bytes
 * its instruction depends on, as they are now (never patched here).
 */
#define LOG_SITE_MAX 64
static void log_site(const struct stitch_patch *p, const uint8_t *old, size_t len)
{
	uint8_t bytes[LOG_SITE_MAX];
	if (!old) {
		old = p->old;
		len = p->len;
	}
	if (p->lead + len > sizeof bytes) {
		/* too long for the log: it says so (the model is marked incomplete) */
		stitch_patch_log_site(p->addr - p->lead, p->old, p->lead + len);
		return;
	}
	memcpy(bytes, (const void *)(p->addr - p->lead), p->lead);
	memcpy(bytes + p->lead, old, len);
	stitch_patch_log_site(p->addr - p->lead, bytes, p->lead + len);
}

/*
 * The SIGTRAP check below (apply_without_traps) is off under
 * ThreadSanitizer: its runtime's background thread blocks every signal and
 * wakes periodically, and it runs signal handlers only at its own safe
 * points, so a stopped world cannot be had there; the int3 protocol is all
 * there is.
 */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

/* A thread that blocks SIGTRAP, looked for a few times: some block it for
 * a moment only - glibc's pthread_create() starts every thread with all
 * signals blocked until it sets the creator's mask, and a thread in our
 * SIGTRAP handler (emulating a trap of the previous batch) blocks it until
 * it returns.  Only a thread still blocking it then makes the batch stop
 * the world (either way is safe).  The looks yield the CPU, which on a
 * loaded machine gives a thread preempted in that moment a time slice to
 * finish it; the price is paid beside a thread that never unblocks (a
 * sigwait() thread): up to 16 time slices before each batch.  Shorter
 * waits (16 sleeps of 64 µs) and taking a blocker asleep in a system call
 * at once were both tried on 2026-11-27: each let a transient blocker
 * pass for a permanent one under load, so that a batch stopped the world
 * (in CI: gdb_prog's step counts failed with the sleeps; test_gdb failed
 * once with the shortcut, plausibly so). */
static pid_t sigtrap_blocker(void)
{
	pid_t tid = 0;
	for (int look = 0; look < 16; look++) {
		tid = stitch_thread_blocking(SIGTRAP);
		if (!tid)
			break;
		sched_yield();
	}
	return tid;
}

/*
 * A thread that blocks SIGTRAP and runs into an int3 of the trap protocol
 * is killed: the kernel cannot hand it a synchronous trap it blocks, so it
 * resets SIGTRAP to its default action.  While such a thread exists the
 * batch is applied in a stopped world instead: every thread parked at an
 * instruction boundary, so none is inside a site (each patch of a trap
 * batch is one instruction, old and new, or its old bytes are NOPs past
 * which arch_batch_skip_nops moves a thread parked among them), all
 * stores, one sync, resume.
 * A thread that blocks the quiescence signal too cannot be parked: the
 * batch then fails, and says why, with nothing written.  (The check is a
 * snapshot: a thread that blocks SIGTRAP only after it is not seen.)
 */
static int apply_without_traps(struct stitch_patch *p, size_t n, pid_t tid)
{
	bool written;
	struct stitch_patch_span span = { p, n }; /* sorted by the caller, as the fixup bisects */
	int err = stitch_apply_stopped(p, n, arch_batch_skip_nops, &span, &written);
	if (err && !written) {
		char why[256];
		snprintf(why, sizeof(why), "%s", stitch_last_error());
		return stitch_fail(-err, "thread %d blocks SIGTRAP, so the int3 protocol would kill the process "
				   "if it ran into a site being patched, and the world could not be stopped "
				   "instead: %s", (int)tid, why);
	}
	if (!err) {
		stitch_count(batches, 1);
		stitch_count(sites_written, n);
	}
	return err;
}

int stitch_batch_apply_locked(struct stitch_batch *b)
{
	/* One pass (100 000 patches to switch as many trace sites): lengths
	 * checked, no-op patches dropped, whether they are sorted. */
	size_t n = 0;
	bool sorted = true;
	uintptr_t last = 0;
	for (size_t i = 0; i < b->count; i++) {
		const struct stitch_patch *p = &b->patches[i];
		if (p->len == 0 || p->len > STITCH_MAX_INSN)
			return stitch_fail(STITCH_EINVAL, "patch of %u bytes at %#lx: length must be 1..%d", p->len,
					   (unsigned long)p->addr, STITCH_MAX_INSN);
		if (stitch_same_bytes(p->old, p->new_bytes, p->len))
			continue;
		sorted &= !n || last <= p->addr;
		last = p->addr;
		if (n != i)
			b->patches[n] = *p;
		n++;
	}
	b->count = n;
	if (n == 0)
		return 0;
	if (!sorted) /* so that overlaps are adjacent and pages group */
		sort_patches(b->patches, n);
	int err = stitch_text_check(b->patches, n);
	if (err)
		return err;
	char want[3 * STITCH_MAX_INSN + 1], found[3 * STITCH_MAX_INSN + 1];
	for (size_t i = 0; i < n; i++) {
		const struct stitch_patch *p = &b->patches[i];
		if (i && b->patches[i - 1].addr + b->patches[i - 1].len > p->addr)
			return stitch_fail(STITCH_EINVAL, "patches at %#lx and %#lx overlap",
					   (unsigned long)b->patches[i - 1].addr, (unsigned long)p->addr);
		/* Compare-and-patch: every site must hold exactly what the caller
		 * planned from; otherwise someone else changed it, and we write nothing. */
		if (!stitch_same_bytes((const uint8_t *)p->addr, p->old, p->len))
			return stitch_fail(STITCH_EMISMATCH, "site %#lx: expected %s, found %s", (unsigned long)p->addr,
					   stitch_hex(want, p->old, p->len),
					   stitch_hex(found, (const uint8_t *)p->addr, p->len));
	}
	if (arch_batch_traps() && !UNDER_TSAN) {
		pid_t tid = sigtrap_blocker();
		if (tid)
			return apply_without_traps(b->patches, n, tid);
	}
	stitch_patch_log_begin(b->operation ? b->operation : "patch batch");
	if (stitch_patch_log_active()) /* (not a call per site for nothing) */
		for (size_t i = 0; i < n; i++)
			log_site(&b->patches[i], NULL, 0);
	batch_syncs = 0;
	batch_running = true;
	stitch_batch_step(0);
	err = arch_batch_apply(b->patches, n);
	batch_running = false;
	stitch_patch_log_end(err);
	if (!err) {
		stitch_count(batches, 1);
		stitch_count(sites_written, n);
	}
	return err;
}

int stitch_apply_patches_locked(const struct stitch_patch *p, size_t n, const char *operation)
{
	struct stitch_batch b;
	stitch_batch_init(&b);
	b.operation = operation;
	int err = 0;
	/* one copy, in scratch memory (the batch checks, filters and sorts in place) */
	if (n && !(b.patches = stitch_scratch(STITCH_SCRATCH_BATCH, n * sizeof(*p))))
		err = -STITCH_ENOMEM;
	if (!err && n) {
		memcpy(b.patches, p, n * sizeof(*p));
		b.count = b.capacity = n;
	}
	if (!err)
		err = stitch_batch_apply_locked(&b);
	return err; /* nothing to free: the patches are scratch */
}

int stitch_apply_patches_inplace_locked(struct stitch_patch *p, size_t n, const char *operation)
{
	struct stitch_batch b;
	stitch_batch_init(&b);
	b.operation = operation;
	b.patches = p; /* lengths checked there */
	b.count = b.capacity = n;
	return stitch_batch_apply_locked(&b); /* nothing to free: the patches are the caller's */
}

void stitch_patch_init(struct stitch_patch *p, uintptr_t addr, const void *old, const void *new_bytes, size_t len)
{
	memset(p, 0, sizeof(*p));
	p->addr = addr;
	p->len = (uint8_t)len;
	memcpy(p->old, old, len);
	memcpy(p->new_bytes, new_bytes, len);
}

void *stitch_scratch(enum stitch_scratch_slot slot, size_t bytes)
{
	static struct {
		void *p;
		size_t size;
	} slots[STITCH_SCRATCH_SLOTS];
	if (bytes > slots[slot].size) {
		/* not realloc: the old contents are not wanted */
		void *p = malloc(bytes);
		if (!p) {
			(void)stitch_fail(STITCH_ENOMEM, "out of memory (%zu bytes of scratch)", bytes);
			return NULL;
		}
		free(slots[slot].p);
		slots[slot].p = p;
		slots[slot].size = bytes;
	}
	return slots[slot].p;
}

int stitch_cmp_uintptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

void stitch_sort_uintptr(uintptr_t *v, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (v[i - 1] > v[i]) {
			qsort(v, n, sizeof(*v), stitch_cmp_uintptr);
			return;
		}
}

void stitch_sort_if_needed(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	for (size_t i = 1; i < n; i++)
		if (cmp((char *)base + (i - 1) * size, (char *)base + i * size) > 0) {
			qsort(base, n, size, cmp);
			return;
		}
}

/*
 * The patch log of a stopped-world operation: adjacent code patches are
 * one site (one reader enters at the first), since a thread parked in one
 * may be moved to another (AArch64: from the BL back to the MOV X9, X30
 * before it; RISC-V: from the JALR back to its AUIPC); literals are data,
 * logged by their stores alone.
 */
static void log_stopped_sites(const struct stitch_patch *p, size_t n)
{
	stitch_patch_log_begin("stopped-world patch");
	if (!stitch_patch_log_active())
		return;
	uint8_t old[LOG_SITE_MAX];
	for (size_t i = 0; i < n;) {
		if (p[i].data) {
			i++;
			continue;
		}
		size_t len = 0, j = i;
		for (; j < n && !p[j].data &&
		       (j == i || (p[j].addr == p[i].addr + len && p[i].lead + len + p[j].len <= sizeof old));
		     j++) {
			memcpy(old + len, p[j].old, p[j].len);
			len += p[j].len;
		}
		log_site(&p[i], old, len);
		i = j; /* > i: the first patch is always taken */
	}
}

int stitch_apply_stopped(struct stitch_patch *p, size_t n, stitch_pc_fixup_fn fixup, void *arg, bool *written)
{
	*written = false;
	sort_patches(p, n); /* step 0 */
	int err = stitch_text_check(p, n);
	if (err)
		return err;
	log_stopped_sites(p, n);
	err = stitch_stop_world(fixup, arg); /* step 1 */
	if (err) {
		stitch_patch_log_end(err);
		return err;
	}
	stitch_patch_log_stop(fixup, arg);
	char want[3 * STITCH_MAX_INSN + 1], found[3 * STITCH_MAX_INSN + 1];
	for (size_t i = 0; i < n && !err; i++) /* step 2 */
		if (!stitch_same_bytes((const uint8_t *)p[i].addr, p[i].old, p[i].len))
			err = stitch_fail(STITCH_EMISMATCH, "site %#lx: expected %s, found %s; nothing written",
					  (unsigned long)p[i].addr, stitch_hex(want, p[i].old, p[i].len),
					  stitch_hex(found, (const uint8_t *)p[i].addr, p[i].len));
	bool opened = false, kept = false;
	if (!err) {
		err = stitch_text_open_checked(p, n); /* checked at step 0, addresses unchanged */
		opened = !err;
	}
	/* step 3: every site at once (text.c merges the stores of a page run) */
	const struct stitch_store_part all_new = { 0, STITCH_MAX_INSN, 0, STITCH_STORE_NEW, 0 };
	const struct stitch_store_part all_old = { 0, STITCH_MAX_INSN, 0, STITCH_STORE_OLD, 0 };
	if (!err)
		err = stitch_text_store_patches(p, n, &all_new);
	if (err && opened) {
		/* A store failed part-way (practically never): put back what we wrote
		 * (sites already holding their old bytes are left alone); nobody ran
		 * meanwhile, so plain stores suffice. */
		int saved = err;
		if (stitch_text_store_patches(p, n, &all_old) != 0)
			stitch_die("stopped-world patch: cannot restore code after a failed write");
		err = saved;
	}
	if (opened) {
		int serr = stitch_text_sync(p, n);
		if (!err)
			err = serr ? serr : stitch_world_check_sleepers();
		if (err && (serr || err == -STITCH_EQUIESCE)) {
			/* Written but not synced (membarrier refused), or a thread
			 * that could not be parked woke up during the stores: put the
			 * old bytes back before anyone else runs, so that memory says
			 * what the caller's state will (nothing changed).  The woken
			 * thread may meet these stores as it may have met the first
			 * ones: the risk it took is not made smaller by keeping them,
			 * and an error must mean that nothing changed. */
			if (stitch_text_store_patches(p, n, &all_old) != 0)
				stitch_die("stopped-world patch: cannot restore code after a failed sync or "
					   "during a woken thread");
			(void)stitch_text_sync(p, n); /* may fail as the first did */
		}
		kept = !err;
		int cerr = stitch_text_close(); /* restoring the rights: checked possible at the open */
		if (!err)
			err = cerr;
	}
	*written = kept;
	stitch_patch_log_resume();
	stitch_resume_world(); /* step 4 */
	stitch_patch_log_end(err);
	return err;
}
