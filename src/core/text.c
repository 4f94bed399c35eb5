/* SPDX-License-Identifier: MIT */
/*
 * The one place that writes code.
 *
 * Two backends, chosen at start-up by a self-test (or forced with
 * STITCH_WRITE_BACKEND=procmem|mprotect):
 *
 *  procmem   pwrite() to /proc/self/mem.  The kernel writes through its own
 *            mapping of the page, so our text is never writable.  Under
 *            qemu-user such writes are not seen by code that already ran (the
 *            translator keeps its old translation), hence the self-test.
 *            Used only where the kernel's copy stores an aligned instruction
 *            word in one access (arch_procmem_word_atomic()).  Many stores
 *            (stitch_text_store_patches) go as one pwrite per page run
 *            where arch_procmem_runs() allows (store_patches_procmem says
 *            why that is safe): a pwrite per site cost ~1 us, 100 ms for
 *            100 000 sites.
 *  mprotect  make the pages writable (keeping their other rights), store with
 *            single-copy-atomic stores, restore the exact original
 *            protection read from /proc/self/maps.  Breaks W^X for the
 *            duration of one batch; qemu-user drops stale translations of a
 *            page made writable, so it works there.
 *
 * The self-test runs the probe function (so that it has been executed, and
 * translated under qemu), rewrites its return value, runs it again and
 * checks the new value, then restores it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch/arch.h"
#include "core/internal.h"
#include "core/patch_log.h"

static enum stitch_backend_kind backend = STITCH_BACKEND_NONE;
static int procmem_fd = -1;
static dev_t procmem_dev; /* what procmem_fd was when we opened it */
static ino_t procmem_ino;
static pid_t procmem_pid; /* the process whose memory it is */

/*
 * Our /proc/self/mem descriptor is a number in the program's table: a
 * program may close it (close_range(3, ~0U, 0) at start-up, a daemon
 * closing "all" descriptors) and open a file of its own that gets the same
 * number.  A pwrite() of code at offset = address would then write into
 * that file.  So each batch checks that the descriptor still is the one we
 * opened (fstat: device and inode), and otherwise opens a new one and
 * leaves that number alone - it is the program's now.  The descriptor is
 * kept at a high number (>= 512) so that ordinary programs do not take it.
 */
static int procmem_open(void)
{
	int fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int high = fcntl(fd, F_DUPFD_CLOEXEC, 512);
	if (high >= 0) {
		close(fd);
		fd = high;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return -1;
	}
	procmem_dev = st.st_dev;
	procmem_ino = st.st_ino;
	procmem_pid = getpid();
	return fd;
}

static bool procmem_fd_is_ours(void)
{
	struct stat st;
	return procmem_fd >= 0 && fstat(procmem_fd, &st) == 0 && st.st_dev == procmem_dev &&
	       st.st_ino == procmem_ino;
}

/* Before a batch's writes (see procmem_open).  Also: a child made without
 * the fork handlers (_Fork(), clone(), syscall(SYS_fork)) holds the
 * parent's descriptor, which writes the parent's memory - its updates
 * rewrote the parent's code (a probe on 2026-11-28): the child opens its
 * own, as a fork() child does in its handler. */
static int procmem_check(void)
{
	bool ours = procmem_fd_is_ours();
	if (ours && procmem_pid == getpid())
		return 0;
	if (ours) {
		stitch_text_after_fork_child();
		if (procmem_fd < 0)
			return stitch_fail_errno(STITCH_EBACKEND, "cannot open /proc/self/mem in a child made "
								  "without fork()'s handlers");
		return 0;
	}
	procmem_fd = procmem_open();
	if (procmem_fd < 0)
		return stitch_fail_errno(STITCH_EBACKEND, "cannot open /proc/self/mem again (the program closed "
							  "the library's descriptor)");
	return 0;
}
static bool membarrier_registered;
static bool arch_sync_available;
static uintptr_t page_size;

enum stitch_backend_kind stitch_text_backend(void)
{
	return backend;
}

/* ---- cross-thread sync ----------------------------------------------------- */

static long membarrier(int cmd, unsigned int flags)
{
	return syscall(__NR_membarrier, cmd, flags, 0);
}

int stitch_sync_init(void)
{
	long cmds = membarrier(MEMBARRIER_CMD_QUERY, 0);
	if (cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) &&
	    membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0) == 0)
		membarrier_registered = true;
	arch_sync_available = arch_sync_all_threads() == 0;
	if (!membarrier_registered && !arch_sync_available)
		return stitch_fail(STITCH_ENOSYNC,
				   "membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) is not available "
				   "(kernel too old or membarrier disabled) and the architecture has no other "
				   "way to synchronise other threads' instruction fetch");
	return 0;
}

int stitch_text_sync(const struct stitch_patch *patches, size_t count)
{
	if (!arch_flush_icache_is_nop()) /* x86: no walk over 100 000 patches for nothing */
		for (size_t i = 0; i < count; i++)
			arch_flush_icache_range(patches[i].addr, patches[i].addr + patches[i].len);
	/* The architecture's own all-threads flush first (RISC-V fence.i on every
	 * hart running us), then membarrier, which also orders our stores before
	 * every other thread's next instruction fetch. */
	if (arch_sync_available && arch_sync_all_threads() != 0)
		return stitch_fail_errno(STITCH_ESYS, "instruction cache flush for all threads failed");
	if (membarrier_registered && membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0) != 0)
		return stitch_fail_errno(STITCH_ESYS, "membarrier(PRIVATE_EXPEDITED_SYNC_CORE) failed");
	stitch_count(syncs, 1);
	stitch_patch_log_sync();
	stitch_batch_synced();
	return 0;
}

/* ---- /proc/self/maps --------------------------------------------------------- */

struct mapping {
	uintptr_t start, end;
	int prot;
};

/* Read the mappings overlapping [lo, hi).  Returns the count or a negative error. */
static int read_mappings(uintptr_t lo, uintptr_t hi, struct mapping **out)
{
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return stitch_fail_errno(STITCH_EPROTECT, "cannot open /proc/self/maps");
	struct mapping *v = NULL;
	size_t n = 0, cap = 0;
	char line[512];
	int err = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) != 3)
			continue;
		size_t len = strlen(line);
		/* Skip the rest of an over-long line (a long path name). */
		while (len && line[len - 1] != '\n' && fgets(line, sizeof(line), f))
			len = strlen(line);
		if (e <= lo || s >= hi)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			struct mapping *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				err = stitch_fail(STITCH_ENOMEM, "out of memory reading /proc/self/maps");
				break;
			}
			v = nv;
		}
		v[n].start = s;
		v[n].end = e;
		v[n].prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
			    (perms[2] == 'x' ? PROT_EXEC : 0);
		n++;
	}
	fclose(f);
	if (err) {
		free(v);
		return err;
	}
	*out = v;
	return (int)n;
}

/*
 * The mappings stitch_text_check() read, kept for the stitch_text_open()
 * that follows it in the same operation (reading /proc/self/maps costs tens
 * of microseconds, as much as switching a site).  Forgotten when the update
 * lock is released: the program may map and unmap as it likes between two
 * operations.  Within one, the code being patched stays mapped as it was -
 * a program unmapping code that is being patched has no right answer.
 * With them, a patched byte of each mapping the checked patches touch
 * (0: none), so that stitch_text_open_checked() of those same patches
 * need not walk 100 000 of them again to find which mappings those are;
 * only on the caller's word that they are the same (a check of some other
 * address, e.g. a static call's target, may come between).
 */
static struct mapping *checked;
static int nchecked;
static uintptr_t *checked_probe;
static const struct stitch_patch *checked_patches;
static size_t checked_count;

void stitch_text_forget_checked(void)
{
	free(checked);
	free(checked_probe);
	checked = NULL;
	checked_probe = NULL;
	checked_patches = NULL;
	nchecked = 0;
	checked_count = 0;
}

/* [*lo, *hi): the bytes count (> 0) patches touch, sorted or not. */
static void patches_span(const struct stitch_patch *patches, size_t count, uintptr_t *lo, uintptr_t *hi)
{
	*lo = UINTPTR_MAX;
	*hi = 0;
	for (size_t i = 0; i < count; i++) {
		if (patches[i].addr < *lo)
			*lo = patches[i].addr;
		if (patches[i].addr + patches[i].len > *hi)
			*hi = patches[i].addr + patches[i].len;
	}
}

/* The mappings overlapping the patches: those of the last check if any (ownership moves to the caller). */
static int mappings_for(const struct stitch_patch *patches, size_t count, struct mapping **out)
{
	if (checked) {
		*out = checked;
		int n = nchecked;
		checked = NULL;
		nchecked = 0;
		return n;
	}
	uintptr_t lo, hi;
	patches_span(patches, count, &lo, &hi);
	return read_mappings(lo, hi, out);
}

/*
 * Every patch must lie inside executable mappings: we never write data, and
 * a patch at an unmapped address must be refused before anyone reads it.
 * All the mappings are read (the file is parsed whole either way), so no
 * pass over the patches is needed to bound them first.
 */
int stitch_text_check(const struct stitch_patch *patches, size_t count)
{
	stitch_text_forget_checked();
	if (count == 0)
		return 0;
	struct mapping *maps = NULL;
	int nmaps = read_mappings(0, UINTPTR_MAX, &maps);
	if (nmaps < 0)
		return nmaps;
	uintptr_t *probe = calloc(nmaps ? (size_t)nmaps : 1, sizeof(*probe));
	int err = probe ? 0 : stitch_fail(STITCH_ENOMEM, "out of memory checking code addresses");
	int first = 0; /* where the previous patch began: patches usually come sorted */
	/* the executable mapping the previous patch lay in (probed): most
	 * patches of a batch do too, and cost three comparisons */
	uintptr_t same_lo = 1, same_hi = 0;
	for (size_t i = 0; i < count && !err; i++) {
		uintptr_t at = patches[i].addr, end = patches[i].addr + patches[i].len;
		if (same_lo <= at && at < end && end <= same_hi)
			continue;
		if (end <= at) { /* empty, or past the end of the address space */
			err = stitch_fail(STITCH_EPROTECT, "site %#lx: %zu bytes there are not mapped executable code",
					  (unsigned long)at, (size_t)patches[i].len);
			break;
		}
		/* The mappings are sorted; a patch may span two adjacent ones. */
		if (first >= nmaps || maps[first].start > at)
			first = 0;
		while (first < nmaps && maps[first].end <= at)
			first++;
		for (int m = first; m < nmaps && at < end; m++) {
			if (maps[m].end <= at || maps[m].start > at)
				continue;
			if (!(maps[m].prot & PROT_EXEC))
				break;
			if (!probe[m])
				probe[m] = at;
			at = maps[m].end;
		}
		if (at < end)
			err = stitch_fail(STITCH_EPROTECT, "site %#lx: %#lx is not mapped executable code",
					  (unsigned long)patches[i].addr, (unsigned long)at);
		else if (first < nmaps && probe[first] && maps[first].start <= patches[i].addr && end <= maps[first].end) {
			same_lo = maps[first].start;
			same_hi = maps[first].end;
		}
	}
	if (err) {
		free(maps);
		free(probe);
		return err;
	}
	checked = maps;
	nchecked = nmaps;
	checked_probe = probe;
	checked_patches = patches;
	checked_count = count;
	return 0;
}

/* [addr, addr + len) lies in executable mappings (of any length: not a
 * patch, whose len is one instruction's). */
int stitch_text_check_code(uintptr_t addr, size_t len)
{
	if (len == 0 || addr + len < addr)
		return stitch_fail(STITCH_EPROTECT, "%zu bytes at %#lx are not mapped executable code", len,
				   (unsigned long)addr);
	uintptr_t end = addr + len, at = addr;
	struct mapping *maps = NULL;
	int n = read_mappings(addr, end, &maps);
	if (n < 0)
		return n;
	for (int m = 0; m < n && at < end; m++) { /* sorted, overlapping [addr, end) */
		if (maps[m].start > at || !(maps[m].prot & PROT_EXEC))
			break;
		at = maps[m].end;
	}
	free(maps);
	if (at < end)
		return stitch_fail(STITCH_EPROTECT, "%#lx (of %zu bytes at %#lx) is not mapped executable code",
				   (unsigned long)at, len, (unsigned long)addr);
	return 0;
}

/* ---- write sessions ---------------------------------------------------------- */

/* Page ranges made writable by the open session, with their original rights. */
static struct mapping *opened;
static size_t opened_count;


/*
 * Under a translating emulator (qemu-user, detected by the self-test), a
 * thread may translate a page between our "make writable" (which drops the
 * page's old translations) and our store, and keep running that stale
 * translation after we return.  qemu translates under its mmap lock and
 * drops a page's translations whenever the page becomes writable again, so
 * one more writable/restore round after the stores, before the sync, drops
 * any translation made from the old bytes.  Natively this is never needed.
 */
static bool emulator_caches_translations;

bool stitch_text_emulated(void)
{
	return emulator_caches_translations;
}

static int restore_opened(void)
{
	int err = 0;
	for (size_t i = 0; i < opened_count; i++) {
		void *start = (void *)opened[i].start;
		size_t len = opened[i].end - opened[i].start;
		if (emulator_caches_translations) {
			stitch_count(protect_calls, 2);
			if ((mprotect(start, len, opened[i].prot) != 0 || mprotect(start, len, opened[i].prot | PROT_WRITE) != 0) &&
			    !err)
				err = stitch_fail_errno(STITCH_EPROTECT, "mprotect(%#lx) to drop stale translations failed",
							(unsigned long)opened[i].start);
		}
		stitch_count(protect_calls, 1);
		if (mprotect(start, len, opened[i].prot) != 0 &&
		    !err)
			err = stitch_fail_errno(STITCH_EPROTECT,
						"code was written but the protection of %#lx-%#lx could not be "
						"restored",
						(unsigned long)opened[i].start, (unsigned long)opened[i].end);
	}
	free(opened);
	opened = NULL;
	opened_count = 0;
	return err;
}

/* Add [start, end) with rights prot to the opened list, merging with the last entry. */
static int note_opened(uintptr_t start, uintptr_t end, int prot)
{
	if (opened_count && opened[opened_count - 1].end == start && opened[opened_count - 1].prot == prot) {
		opened[opened_count - 1].end = end;
		return 0;
	}
	struct mapping *nv = realloc(opened, (opened_count + 1) * sizeof(*opened));
	if (!nv)
		return stitch_fail(STITCH_ENOMEM, "out of memory opening code for writing");
	opened = nv;
	opened[opened_count++] = (struct mapping){ start, end, prot };
	return 0;
}

static int open_mprotect(const struct stitch_patch *patches, size_t count)
{
	/* Collect every page touched (a patch may straddle two), sorted, unique.
	 * Batches come sorted by address, so the list usually is already. */
	uintptr_t *pages = malloc(2 * count * sizeof(*pages));
	if (!pages)
		return stitch_fail(STITCH_ENOMEM, "out of memory opening code for writing");
	size_t np = 0;
	for (size_t i = 0; i < count; i++) {
		uintptr_t first = patches[i].addr & ~(page_size - 1);
		uintptr_t last = (patches[i].addr + patches[i].len - 1) & ~(page_size - 1);
		if (!np || pages[np - 1] != first)
			pages[np++] = first;
		if (last != first)
			pages[np++] = last;
	}
	stitch_sort_uintptr(pages, np);
	size_t unique = 0;
	for (size_t i = 0; i < np; i++)
		if (!unique || pages[unique - 1] != pages[i])
			pages[unique++] = pages[i];
	np = unique;

	/* the mappings overlapping the patched bytes are those of their pages */
	struct mapping *maps = NULL;
	int nmaps = mappings_for(patches, count, &maps);
	if (nmaps < 0) {
		free(pages);
		return nmaps;
	}
	int err = 0;
	for (size_t i = 0; i < np && !err; i++) {
		int m = 0;
		while (m < nmaps && maps[m].end <= pages[i])
			m++;
		if (m == nmaps || maps[m].start > pages[i]) {
			err = stitch_fail(STITCH_EPROTECT, "address %#lx is not mapped", (unsigned long)pages[i]);
			break;
		}
		if (!(maps[m].prot & PROT_EXEC)) {
			err = stitch_fail(STITCH_EPROTECT, "page %#lx is not executable code",
					  (unsigned long)pages[i]);
			break;
		}
		err = note_opened(pages[i], pages[i] + page_size, maps[m].prot);
	}
	free(maps);
	free(pages);
	/*
	 * First ask for each run's own rights: nothing changes, but the call
	 * meets the seccomp filter and security module that the restore at
	 * close will meet.  A restore that would be refused is found here,
	 * before anything is made writable or written; found at close, the new
	 * code would stay in place while the caller's state says it failed.
	 */
	for (size_t i = 0; i < opened_count && !err; i++) {
		stitch_count(protect_calls, 1);
		if (mprotect((void *)opened[i].start, opened[i].end - opened[i].start, opened[i].prot) != 0) {
			err = stitch_fail_errno(STITCH_EPROTECT,
						"mprotect(%#lx, %lu) to the rights it has is refused, so they could "
						"not be restored after writing; nothing written",
						(unsigned long)opened[i].start,
						(unsigned long)(opened[i].end - opened[i].start));
			opened_count = 0; /* nothing changed */
		}
	}
	/* Now change the rights, one call per merged run. */
	for (size_t i = 0; i < opened_count && !err; i++) {
		stitch_count(protect_calls, 1);
		if (mprotect((void *)opened[i].start, opened[i].end - opened[i].start,
			     opened[i].prot | PROT_WRITE) != 0) {
			err = stitch_fail_errno(STITCH_EPROTECT, "mprotect(%#lx, %lu, +PROT_WRITE) failed",
						(unsigned long)opened[i].start,
						(unsigned long)(opened[i].end - opened[i].start));
			opened_count = i; /* restore only those already changed */
		}
	}
	if (err)
		restore_opened();
	return err;
}

/*
 * /proc/self/mem needs no opening, but a mapping it cannot write (a
 * read-only shared file mapping, say) must be found before the first real
 * store.  Whether the kernel writes through /proc/self/mem is decided per
 * mapping (the VMA's flags: a private mapping is written by copy-on-write,
 * a shared one only if writable), so each mapping touched gets one store of
 * a byte it already holds, which changes nothing any thread could observe.
 * A later failure on one page (out of memory for its copy) is what the
 * protocols' roll-back is for.  The mappings, with their rights, are kept
 * for the session: stitch_text_store_patches() merges stores into page runs
 * only inside one mapping that is not writable.
 */
static int open_procmem(const struct stitch_patch *patches, size_t count, bool use_checked)
{
	/* probe[m]: a patched byte inside mapping m (0: none) - found by the
	 * check of these same patches (stitch_text_open_checked), or here */
	int err = procmem_check();
	if (err)
		return err;
	uintptr_t *probe = NULL;
	if (use_checked && checked && checked_probe && patches == checked_patches && count == checked_count) {
		probe = checked_probe;
		checked_probe = NULL;
	}
	struct mapping *maps = NULL;
	int nmaps = mappings_for(patches, count, &maps);
	if (nmaps < 0) {
		free(probe);
		return nmaps;
	}
	if (!probe) {
		probe = calloc(nmaps ? (size_t)nmaps : 1, sizeof(*probe));
		err = probe ? 0 : stitch_fail(STITCH_ENOMEM, "out of memory opening code for writing");
		/* the mappings are sorted, a patch may straddle two of them */
		int prev = -1;
		for (size_t i = 0; i < count && !err; i++) {
			uintptr_t ends[2] = { patches[i].addr, patches[i].addr + patches[i].len - 1 };
			for (int k = 0; k < 2; k++) {
				if (prev >= 0 && maps[prev].start <= ends[k] && ends[k] < maps[prev].end)
					continue; /* same mapping as the byte before: probed already */
				int a = 0, b = nmaps;
				while (a < b) {
					int mid = a + (b - a) / 2;
					if (maps[mid].end <= ends[k])
						a = mid + 1;
					else
						b = mid;
				}
				if (a == nmaps || maps[a].start > ends[k]) {
					err = stitch_fail(STITCH_EPROTECT, "address %#lx is not mapped",
							  (unsigned long)ends[k]);
					break;
				}
				if (!probe[a])
					probe[a] = ends[k];
				prev = a;
			}
		}
	}
	for (int m = 0; m < nmaps && !err; m++) {
		if (!probe[m])
			continue;
		uint8_t same = *(const volatile uint8_t *)probe[m];
		if (pwrite(procmem_fd, &same, 1, (off_t)probe[m]) != 1)
			err = stitch_fail_errno(STITCH_EPROTECT, "cannot write code at %#lx through /proc/self/mem",
						(unsigned long)probe[m]);
		else
			err = note_opened(maps[m].start, maps[m].end, maps[m].prot);
	}
	free(probe);
	free(maps);
	if (err) {
		free(opened);
		opened = NULL;
		opened_count = 0;
	}
	return err;
}

static int text_open(const struct stitch_patch *patches, size_t count, bool use_checked)
{
	if (count == 0)
		return 0;
	if (backend == STITCH_BACKEND_MPROTECT)
		return open_mprotect(patches, count);
	if (backend == STITCH_BACKEND_PROCMEM)
		return open_procmem(patches, count, use_checked);
	return stitch_fail(STITCH_EBACKEND, "no write backend");
}

int stitch_text_open(const struct stitch_patch *patches, size_t count)
{
	return text_open(patches, count, false);
}

int stitch_text_open_checked(const struct stitch_patch *patches, size_t count)
{
	return text_open(patches, count, true);
}

int stitch_text_close(void)
{
	if (backend == STITCH_BACKEND_MPROTECT)
		return restore_opened();
	free(opened);
	opened = NULL;
	opened_count = 0;
	return 0;
}

/*
 * A store the architecture sees as one access where size and alignment
 * allow: a volatile, naturally aligned store of 1, 2, 4 or 8 bytes is one
 * store instruction on all three architectures (the kernel's WRITE_ONCE).
 * Not atomic builtins: ThreadSanitizer instruments those even in a
 * no_sanitize function, and has no shadow memory for code pages; a store
 * into code is not a data race it could reason about anyway (other threads
 * execute these bytes, they do not load them).
 */
__attribute__((no_sanitize("thread"))) static void store_atomic(uintptr_t addr, const uint8_t *bytes, size_t len)
{
	if (len == 1) {
		*(volatile uint8_t *)addr = bytes[0];
	} else if (len == 2 && addr % 2 == 0) {
		uint16_t v;
		memcpy(&v, bytes, 2);
		*(volatile uint16_t *)addr = v;
	} else if (len == 4 && addr % 4 == 0) {
		uint32_t v;
		memcpy(&v, bytes, 4);
		*(volatile uint32_t *)addr = v;
	} else if (len == 8 && addr % 8 == 0) {
		uint64_t v;
		memcpy(&v, bytes, 8);
		*(volatile uint64_t *)addr = v;
	} else {
		for (size_t i = 0; i < len; i++)
			((volatile uint8_t *)addr)[i] = bytes[i];
	}
}

/*
 * In a child of fork(): the inherited /proc/self/mem descriptor still
 * refers to the *parent's* memory (the file was opened in the parent), so
 * writing through it would patch the parent.  Open the child's own.  And
 * register the child for membarrier: the registration belongs to the
 * parent's mm.  Both are async-signal-safe system calls.
 */
void stitch_text_after_fork_child(void)
{
	if (procmem_fd >= 0) {
		if (procmem_fd_is_ours()) /* else the program's own file now: left alone */
			close(procmem_fd);
		procmem_fd = procmem_open();
		/* On failure every store reports it (procmem_fd < 0 below). */
	}
	if (membarrier_registered)
		(void)membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0); /* failure: the next sync says so */
}

int stitch_text_store(uintptr_t addr, const uint8_t *bytes, size_t len)
{
	stitch_patch_log_store(addr, bytes, len); /* announced before the write */
	if (backend == STITCH_BACKEND_PROCMEM && procmem_fd < 0)
		return stitch_fail(STITCH_EBACKEND, "/proc/self/mem could not be opened again after fork()");
	if (backend == STITCH_BACKEND_PROCMEM) {
		ssize_t w = pwrite(procmem_fd, bytes, len, (off_t)addr);
		if (w != (ssize_t)len)
			return stitch_fail_errno(STITCH_EPROTECT, "write of %zu bytes at %#lx through /proc/self/mem failed",
						 len, (unsigned long)addr);
		return 0;
	}
	if (backend == STITCH_BACKEND_MPROTECT) {
		store_atomic(addr, bytes, len);
		return 0;
	}
	return stitch_fail(STITCH_EBACKEND, "no write backend");
}

/*
 * Not code: one pointer-sized word that other threads may load at any
 * moment (a GOT slot, imports.c).  One aligned atomic store, so a load sees
 * the old or the new value; a page that is not writable (RELRO) is made
 * writable around the store and given back its protection as read from
 * /proc/self/maps.  Not /proc/self/mem: the kernel's copy is not promised
 * to be one store.  Nothing is written when the page's protection cannot
 * be read or changed.
 */
int stitch_store_word(uintptr_t *word, uintptr_t value)
{
	uintptr_t addr = (uintptr_t)word;
	if (addr % sizeof(uintptr_t))
		return stitch_fail(STITCH_EALIGN, "word at %#lx is not aligned", (unsigned long)addr);
	struct mapping *maps = NULL;
	int n = read_mappings(addr, addr + sizeof(uintptr_t), &maps);
	if (n < 0)
		return n;
	int prot = n == 1 ? maps[0].prot : 0;
	free(maps);
	if (n != 1 || !(prot & PROT_READ))
		return stitch_fail(STITCH_EPROTECT, "word at %#lx is not in one readable mapping", (unsigned long)addr);
	size_t len = (size_t)sysconf(_SC_PAGESIZE); /* ready before stitch_text_init() sets page_size */
	uintptr_t page = addr & ~((uintptr_t)len - 1);
	if (!(prot & PROT_WRITE) && mprotect((void *)page, len, prot | PROT_WRITE) != 0)
		return stitch_fail_errno(STITCH_EPROTECT, "mprotect of the page at %#lx failed", (unsigned long)page);
	__atomic_store_n(word, value, __ATOMIC_RELEASE);
	if (!(prot & PROT_WRITE) && mprotect((void *)page, len, prot) != 0)
		return stitch_fail_errno(STITCH_EPROTECT, "the page at %#lx stays writable: mprotect failed",
					 (unsigned long)page);
	return 0;
}

/* Where `part` stores for patch p: false if nowhere (too short a patch, empty range). */
static bool part_range(const struct stitch_patch *p, const struct stitch_store_part *part, uintptr_t *addr,
		       size_t *len)
{
	size_t to = part->to < p->len ? part->to : p->len;
	if (p->len < part->min_len || part->from >= to)
		return false;
	*addr = p->addr + part->from;
	*len = to - part->from;
	return true;
}

/* The bytes `part` stores for patch p (part_range() said where, len of them), into out. */
static void part_bytes(const struct stitch_patch *p, const struct stitch_store_part *part, size_t len,
		       uint8_t out[STITCH_MAX_INSN])
{
	if (part->src == STITCH_STORE_FILL)
		memset(out, part->fill, len);
	else
		memcpy(out, (part->src == STITCH_STORE_OLD ? p->old : p->new_bytes) + part->from, len);
}

/* The opened mapping holding [a, e), or NULL (procmem sessions keep them). */
static const struct mapping *opened_at(uintptr_t a, uintptr_t e)
{
	size_t lo = 0, hi = opened_count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (opened[mid].end <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < opened_count && opened[lo].start <= a && e <= opened[lo].end ? &opened[lo] : NULL;
}

#define RUN_MAX ((size_t)128 * 1024)
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && STITCH_MAX_INSN <= 8,
	       "store_patches_procmem() merges a site's bytes as the low bytes of one 64-bit word");

/*
 * Batched stores through /proc/self/mem.  A pwrite per store costs a system
 * call, a page-table walk and a page copy in the kernel (1-2 us); 100 000
 * sites took ~100 ms.  So stores that lie on the same or adjacent pages are
 * merged into one write of the whole run, [first store, last store), in
 * which every byte between the stores is written with the value it holds.
 * Why rewriting those bytes is harmless:
 *  - they are unchanged: the run lies inside one mapping that is not
 *    writable, so only /proc/self/mem or an mprotect can change its bytes,
 *    and every code change stitch makes is made under the update lock we
 *    hold (code outside stitch that rewrites text behind it is beyond any
 *    protocol's reach: a single site's compare-then-write has the same
 *    window).  We read them after the caller's compare, inside the lock;
 *  - a thread executing them meanwhile fetches the same bytes before and
 *    after: on x86 (arch_procmem_runs) the protocols rely on nothing being
 *    atomic beyond one byte, the kernel's copy stores every byte of the
 *    run once with its final value, and a byte that does not change cannot
 *    be observed torn.  Where an instruction word must be stored in one
 *    access (AArch64), a long copy is not known to do that: no runs there;
 *  - the stores themselves land in the same order and before the same
 *    sync as one pwrite each would have, page after page.
 * A run only covers pages that hold a store (or lie between two that do on
 * adjacent pages), so no other page is copied on write.  The patch log
 * records each store, not the run: the bytes in between do not change.
 */
static int store_patches_procmem(const struct stitch_patch *p, size_t n, const struct stitch_store_part *part)
{
	uint8_t *buf = NULL;
	int err = 0;
	size_t i = 0;
	while (i < n && !err) {
		uintptr_t a;
		size_t len;
		if (!part_range(&p[i], part, &a, &len)) {
			i++;
			continue;
		}
		const struct mapping *m = arch_procmem_runs() ? opened_at(a, a + len) : NULL;
		if (!m || (m->prot & PROT_WRITE)) {
			uint8_t bytes[STITCH_MAX_INSN];
			part_bytes(&p[i], part, len, bytes);
			if (memcmp((const void *)a, bytes, len) != 0)
				err = stitch_text_store(a, bytes, len);
			i++;
			continue;
		}
		/* RUN_MAX + 8: a site's bytes are merged as one 8-byte word */
		if (!buf && !(buf = stitch_scratch(STITCH_SCRATCH_RUN, RUN_MAX + 8))) {
			err = -STITCH_ENOMEM;
			break;
		}
		/* One pass: the run [a, end) grows store by store; buf holds the
		 * memory of [a, copied), copied a page at a time.  The run may
		 * reach the next page (or end at the mapping, or at RUN_MAX):
		 * a store starting past `reach` (the end of the page after the
		 * last store's) ends it. */
		uintptr_t end = a, copied = a, reach = (a & ~(page_size - 1)) + 2 * page_size;
		uintptr_t limit = m->end < a + RUN_MAX ? m->end : a + RUN_MAX;
		size_t changed = 0, j = i;
		bool logging = stitch_patch_log_active();
		/* this loop runs once per site and pass (300 000 times to switch
		 * 100 000 x86-64 sites): what `part` says is worked out once,
		 * the bytes are merged as one word, no library call */
		const size_t from = part->from, to = part->to;
		/* a patch shorter than this has no bytes in `part` */
		const size_t min_len = part->min_len > from ? part->min_len : from + 1;
		/* the source: 8 bytes at src + j * stride (a fill: the same 8
		 * every time), inside the patch (from <= 5; x86-64's steps have
		 * from <= 1) or copied byte by byte */
		uint64_t fill_word;
		memset(&fill_word, part->fill, sizeof(fill_word));
		const uint8_t *src_base = (const uint8_t *)&fill_word;
		size_t stride = 0;
		if (part->src != STITCH_STORE_FILL) {
			src_base = (const uint8_t *)p + from +
				   (part->src == STITCH_STORE_OLD ? offsetof(struct stitch_patch, old)
								  : offsetof(struct stitch_patch, new_bytes));
			stride = sizeof(struct stitch_patch);
		}
		const bool src_word = stride == 0 || (size_t)(src_base - (const uint8_t *)p) + sizeof(uint64_t) <=
								   sizeof(struct stitch_patch);
		static const uint64_t low_bytes[9] = { 0,
						       0xff,
						       0xffff,
						       0xffffff,
						       0xffffffff,
						       0xffffffffff,
						       0xffffffffffff,
						       0xffffffffffffff,
						       ~(uint64_t)0 };
		for (; j < n; j++) {
			const struct stitch_patch *q = &p[j];
			size_t qlen = q->len;
			if (qlen < min_len)
				continue;
			uintptr_t b = q->addr + from, b_end = q->addr + (to < qlen ? to : qlen);
			/* (never for the first store, which lies inside the mapping
			 * from a; b < end: overlapping patches, which batch.c refuses) */
			if (b_end > limit || b >= reach || b < end)
				break;
			if (b_end > copied) {
				uintptr_t to_page = (b_end + page_size - 1) & ~(page_size - 1);
				if (to_page > limit)
					to_page = limit; /* still >= b_end */
				memcpy(buf + (copied - a), (const void *)copied, to_page - copied);
				copied = to_page;
				reach = to_page + page_size;
			}
			/* at most STITCH_MAX_INSN (8) bytes, the first of them in
			 * the word's low byte (little-endian: every architecture
			 * here); the destination's 8 lie inside buf (RUN_MAX + 8) */
			uint64_t src = 0, dst;
			const uint8_t *src_bytes = src_base + j * stride;
			if (src_word)
				memcpy(&src, src_bytes, sizeof(src));
			else
				for (size_t t = 0; t < b_end - b; t++)
					((uint8_t *)&src)[t] = src_bytes[t];
			uint8_t *at = buf + (b - a);
			memcpy(&dst, at, sizeof(dst));
			uint64_t differs = (dst ^ src) & low_bytes[b_end - b];
			end = b_end;
			if (!differs)
				continue; /* what memory holds already: no store */
			dst ^= differs;
			memcpy(at, &dst, sizeof(dst));
			if (logging)
				stitch_patch_log_store(b, at, b_end - b); /* announced before the write (memory still old) */
			changed++;
		}
		if (changed && pwrite(procmem_fd, buf, end - a, (off_t)a) != (ssize_t)(end - a))
			err = stitch_fail_errno(STITCH_EPROTECT,
						"write of %zu bytes at %#lx (%zu sites) through /proc/self/mem failed",
						(size_t)(end - a), (unsigned long)a, changed);
		i = j;
	}
	return err;
}

int stitch_text_store_patches(const struct stitch_patch *p, size_t n, const struct stitch_store_part *part)
{
	if (backend == STITCH_BACKEND_PROCMEM && procmem_fd >= 0)
		return store_patches_procmem(p, n, part);
	int err = 0;
	for (size_t i = 0; i < n && !err; i++) {
		uintptr_t a;
		size_t len;
		uint8_t bytes[STITCH_MAX_INSN];
		if (!part_range(&p[i], part, &a, &len))
			continue;
		part_bytes(&p[i], part, len, bytes);
		/* what memory holds already: no store (no library call per site) */
		if (!stitch_same_bytes((const uint8_t *)a, bytes, len))
			err = stitch_text_store(a, bytes, len);
	}
	return err;
}

int stitch_text_store_all_and_sync(const struct stitch_patch *p, size_t n)
{
	int err = stitch_text_open(p, n);
	if (err)
		return err;
	for (size_t i = 0; i < n && !err; i++)
		err = stitch_text_store(p[i].addr, p[i].new_bytes, p[i].len);
	int cerr = stitch_text_close();
	int serr = stitch_text_sync(p, n);
	return err ? err : cerr ? cerr : serr;
}

/* ---- backend selection --------------------------------------------------------- */

static int probe_write(const struct arch_probe *p, const uint8_t *bytes)
{
	struct stitch_patch patch = { .addr = p->addr, .len = p->len };
	memcpy(patch.new_bytes, bytes, p->len);
	int err = stitch_text_open(&patch, 1);
	if (err)
		return err;
	err = stitch_text_store(p->addr, bytes, p->len);
	int cerr = stitch_text_close();
	if (!err)
		err = cerr;
	if (!err)
		err = stitch_text_sync(&patch, 1);
	return err;
}

/* Set when a backend wrote the probe but the old code kept running. */
static bool probe_change_not_executed;

/* 0 if the backend really changes code that already ran; an error otherwise. */
static int self_test(enum stitch_backend_kind kind)
{
	backend = kind;
	if (kind == STITCH_BACKEND_PROCMEM && procmem_fd < 0) {
		procmem_fd = procmem_open();
		if (procmem_fd < 0)
			return stitch_fail_errno(STITCH_EBACKEND, "cannot open /proc/self/mem for writing");
	}
	struct arch_probe p;
	arch_probe_describe(&p);
	if (p.run() != 1 || memcmp((void *)p.addr, p.old_bytes, p.len) != 0)
		stitch_die("backend probe function is not in its original state");
	int err = probe_write(&p, p.new_bytes);
	if (err)
		return err;
	int seen = p.run();
	err = probe_write(&p, p.old_bytes);
	if (err || p.run() != 1)
		stitch_die("backend probe function could not be restored");
	if (seen != 2) {
		probe_change_not_executed = true;
		return stitch_fail(STITCH_EBACKEND,
				   "backend %s wrote the probe function but the change was not executed "
				   "(stale translation, as under qemu-user)",
				   kind == STITCH_BACKEND_PROCMEM ? "procmem" : "mprotect");
	}
	return 0;
}

static void drop_backend(void)
{
	if (procmem_fd >= 0 && backend != STITCH_BACKEND_PROCMEM) {
		if (procmem_fd_is_ours())
			close(procmem_fd);
		procmem_fd = -1;
	}
}

int stitch_text_init(void)
{
	page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
	/*
	 * Write the probe through procmem first, whatever backend is chosen
	 * (nothing else runs the probe): a write the kernel made but the code
	 * does not see means an emulator caches translations (restore_opened).
	 * Where procmem works and stores words atomically it is also the
	 * backend of choice.
	 */
	int perr = self_test(STITCH_BACKEND_PROCMEM);
	emulator_caches_translations = probe_change_not_executed;
	const char *forced = getenv("STITCH_WRITE_BACKEND");
	if (forced && *forced) {
		enum stitch_backend_kind kind;
		if (!strcmp(forced, "procmem"))
			kind = STITCH_BACKEND_PROCMEM;
		else if (!strcmp(forced, "mprotect"))
			kind = STITCH_BACKEND_MPROTECT;
		else
			return stitch_fail(STITCH_EINVAL, "STITCH_WRITE_BACKEND=%s: expected procmem or mprotect",
					   forced);
		if (kind == STITCH_BACKEND_PROCMEM && !arch_procmem_word_atomic())
			return stitch_fail(STITCH_EINVAL,
					   "STITCH_WRITE_BACKEND=procmem: on this architecture the kernel may copy "
					   "an instruction word through /proc/self/mem in pieces, which another "
					   "thread could fetch torn");
		int err = self_test(kind);
		if (err) {
			backend = STITCH_BACKEND_NONE;
			return stitch_fail(STITCH_EBACKEND, "forced write backend %s failed its self-test: %s",
					   forced, stitch_last_error());
		}
		drop_backend();
		return 0;
	}
	char why[2][300] = { "not tried", "not tried" };
	if (perr == 0 && arch_procmem_word_atomic()) {
		drop_backend();
		return 0;
	}
	snprintf(why[0], sizeof(why[0]), "%s",
		 perr ? stitch_last_error() : "works, but is not word-atomic on this architecture");
	if (self_test(STITCH_BACKEND_MPROTECT) == 0) {
		drop_backend();
		stitch_clear_error(); /* procmem's failure is not the caller's */
		return 0;
	}
	snprintf(why[1], sizeof(why[1]), "%s", stitch_last_error());
	backend = STITCH_BACKEND_NONE;
	drop_backend();
	return stitch_fail(STITCH_EBACKEND, "no code-writing backend works: procmem: %s; mprotect: %s", why[0],
			   why[1]);
}
