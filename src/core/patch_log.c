/* SPDX-License-Identifier: MIT */
/*
 * Patch log writer (patch_log.h, docs/patch-log.md).  An operation is
 * buffered in memory and written as one model file at
 * stitch_patch_log_end(): the model format wants the sites (code regions)
 * before the writer's steps, while the library announces them
 * interleaved.  Output is plain stdio; a failure to write the log is
 * reported once on stderr and never affects the patch operation.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/patch_log.h"

/*
 * stitch-check explores at most four readers, and every site deserves one:
 * an operation with more sites is written as several models of at most
 * LOG_SITES_PER_MODEL sites each, every model with all of the operation's
 * syncs and quiescence waits and the stores that fall into its sites.
 * Sites are independent (no instruction spans two of them), so the models
 * together check the whole operation.
 */
#define LOG_SITES_PER_MODEL 4
#define LOG_MAX_BYTES 64
#define LOG_OTHERS_IN_EVERY_MODEL 8 /* stitch-check takes 16 regions; 4 sites and their neighbours */
#define LOG_NEAR 64                 /* bytes between a site and a literal that goes with it */
#if defined(__x86_64__)
#define LOG_ARCH "x86_64"
#elif defined(__aarch64__)
#define LOG_ARCH "aarch64"
#elif defined(__riscv) && __riscv_xlen == 64
#define LOG_ARCH "riscv64"
#else
#error "patch_log: unsupported architecture"
#endif

enum log_step { LOG_STORE, LOG_SYNC, LOG_QUIESCE, LOG_STOP, LOG_RESUME };

/* The smallest instruction: the granule at which a parked PC can be. */
#if defined(__x86_64__)
#define LOG_INSN_ALIGN 1
#elif defined(__aarch64__)
#define LOG_INSN_ALIGN 4
#else
#define LOG_INSN_ALIGN 2
#endif

struct log_region {
	uintptr_t addr;
	size_t len;
	uint8_t bytes[LOG_MAX_BYTES];
	bool site; /* announced as a site (gets a reader), or only covers a store */
};

struct log_step_rec {
	enum log_step kind;
	uintptr_t addr;
	size_t len;
	uint8_t bytes[LOG_MAX_BYTES];
};

static struct {
	int state; /* 0 = not yet looked at the environment, 1 = off, 2 = on */
	char dir[4096];
	unsigned long seq;
	bool active;   /* between begin and end */
	bool overflow; /* out of memory or an over-long store: the log is no proof */
	char op[128];
	struct log_region *regions;
	size_t nregions, cap_regions;
	struct log_step_rec *steps;
	size_t nsteps, cap_steps;
	struct log_rewind { uintptr_t from, to; } *rewinds; /* where a stopped world's fixup moves a thread */
	size_t nrewinds, cap_rewinds;
} plog;

/* Grow *v (elements of size sz) to hold one more; false when out of memory. */
static bool grow(void **v, size_t *cap, size_t n, size_t sz)
{
	if (n < *cap)
		return true;
	size_t ncap = *cap ? *cap * 2 : 64;
	void *nv = realloc(*v, ncap * sz);
	if (!nv)
		return false;
	*v = nv;
	*cap = ncap;
	return true;
}

static bool log_on(void)
{
	if (plog.state == 0) {
		const char *d = getenv("STITCH_PATCH_LOG");
		plog.state = 1;
		if (d && *d && strlen(d) < sizeof plog.dir) {
			strcpy(plog.dir, d);
			/* the directory may not exist yet; an existing one is fine */
			if (mkdir(d, 0777) && errno != EEXIST)
				fprintf(stderr, "stitch: STITCH_PATCH_LOG=%s: %s\n", d, strerror(errno));
			else
				plog.state = 2;
		}
	}
	return plog.state == 2;
}

/*
 * Region holding [addr, addr + len), or -1.  Sites arrive sorted by address
 * (batches are sorted), so the sorted prefix is searched by bisection and
 * only the few regions added out of order are scanned.
 */
static size_t sorted_regions;

static long find_region(uintptr_t addr, size_t len)
{
	size_t lo = 0, hi = sorted_regions;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct log_region *r = &plog.regions[mid];
		if (addr >= r->addr + r->len)
			lo = mid + 1;
		else if (addr < r->addr)
			hi = mid;
		else
			return addr + len <= r->addr + r->len ? (long)mid : -1;
	}
	for (size_t i = sorted_regions; i < plog.nregions; i++) {
		const struct log_region *r = &plog.regions[i];
		if (addr >= r->addr && addr + len <= r->addr + r->len)
			return (long)i;
	}
	return -1;
}

static bool covered(uintptr_t addr, size_t len)
{
	return find_region(addr, len) >= 0;
}

static void add_region(uintptr_t addr, const uint8_t *bytes, size_t len, bool site)
{
	if (covered(addr, len))
		return;
	if (len > LOG_MAX_BYTES ||
	    !grow((void **)&plog.regions, &plog.cap_regions, plog.nregions, sizeof(*plog.regions))) {
		plog.overflow = true;
		return;
	}
	if (sorted_regions == plog.nregions &&
	    (plog.nregions == 0 || plog.regions[plog.nregions - 1].addr + plog.regions[plog.nregions - 1].len <= addr))
		sorted_regions++;
	struct log_region *r = &plog.regions[plog.nregions++];
	r->addr = addr;
	r->len = len;
	r->site = site;
	memcpy(r->bytes, bytes, len);
}

void stitch_patch_log_begin(const char *operation)
{
	if (!log_on())
		return;
	plog.active = true;
	plog.overflow = false;
	plog.nregions = 0;
	sorted_regions = 0;
	plog.nsteps = 0;
	plog.nrewinds = 0;
	snprintf(plog.op, sizeof plog.op, "%s", operation ? operation : "operation");
}

bool stitch_patch_log_active(void)
{
	return plog.active;
}

void stitch_patch_log_site(uintptr_t addr, const uint8_t *bytes, size_t len)
{
	if (plog.active)
		add_region(addr, bytes, len, true);
}

static void add_step(enum log_step kind, uintptr_t addr, const uint8_t *bytes, size_t len)
{
	if (len > LOG_MAX_BYTES || !grow((void **)&plog.steps, &plog.cap_steps, plog.nsteps, sizeof(*plog.steps))) {
		plog.overflow = true;
		return;
	}
	struct log_step_rec *st = &plog.steps[plog.nsteps++];
	st->kind = kind;
	st->addr = addr;
	st->len = len;
	if (len)
		memcpy(st->bytes, bytes, len);
}

void stitch_patch_log_store(uintptr_t addr, const uint8_t *bytes, size_t len)
{
	if (!plog.active)
		return;
	/* bytes outside every site: record what is there now (the store has not happened yet) */
	if (!covered(addr, len))
		add_region(addr, (const uint8_t *)addr, len, false);
	add_step(LOG_STORE, addr, bytes, len);
}

void stitch_patch_log_sync(void)
{
	if (plog.active)
		add_step(LOG_SYNC, 0, NULL, 0);
}

void stitch_patch_log_quiesce(void)
{
	if (plog.active)
		add_step(LOG_QUIESCE, 0, NULL, 0);
}

void stitch_patch_log_stop(bool (*fixup)(uintptr_t *pc, void *arg), void *arg)
{
	if (!plog.active)
		return;
	add_step(LOG_STOP, 0, NULL, 0);
	for (size_t i = 0; fixup && i < plog.nregions; i++) {
		const struct log_region *r = &plog.regions[i];
		if (!r->site)
			continue;
		for (uintptr_t pc = r->addr; pc < r->addr + r->len; pc += LOG_INSN_ALIGN) {
			uintptr_t to = pc;
			if (!fixup(&to, arg) || to == pc)
				continue;
			if (!grow((void **)&plog.rewinds, &plog.cap_rewinds, plog.nrewinds, sizeof(*plog.rewinds))) {
				plog.overflow = true;
				return;
			}
			plog.rewinds[plog.nrewinds++] = (struct log_rewind){ pc, to };
		}
	}
}

void stitch_patch_log_resume(void)
{
	if (plog.active)
		add_step(LOG_RESUME, 0, NULL, 0);
}

static void put_bytes(FILE *f, const uint8_t *b, size_t n)
{
	fputs(".bytes", f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, " %02x", b[i]);
}

/* Whether the store falls into a region of this model (stores outside every region: all models). */
static bool store_in_model(const struct log_step_rec *st, const bool *member)
{
	long i = find_region(st->addr, st->len);
	return i < 0 || member[i];
}

/* Model `part` holds the sites numbered [part * N, part * N + N) and every non-site region. */
static void write_model(int result, unsigned part, unsigned parts, bool *member, bool *reader)
{
	char path[4200];
	size_t site_no = 0, first = (size_t)part * LOG_SITES_PER_MODEL;
	size_t others = 0, readers_of[LOG_SITES_PER_MODEL], nreaders = 0;
	for (size_t i = 0; i < plog.nregions; i++) {
		member[i] = !plog.regions[i].site || (site_no >= first && site_no < first + LOG_SITES_PER_MODEL);
		reader[i] = member[i] && plog.regions[i].site;
		if (reader[i])
			readers_of[nreaders++] = i;
		site_no += plog.regions[i].site;
		others += !plog.regions[i].site;
	}
	/* Regions that are no site (a literal an operation stores) go into
	 * every model, unless there are more than a model can hold (one per
	 * traced function when a stopped world prepares many sites): then each
	 * goes only with the sites it stands next to. */
	if (others > LOG_OTHERS_IN_EVERY_MODEL)
		for (size_t i = 0; i < plog.nregions; i++) {
			if (plog.regions[i].site)
				continue;
			const struct log_region *o = &plog.regions[i];
			member[i] = false;
			for (size_t j = 0; j < nreaders && !member[i]; j++) {
				const struct log_region *r = &plog.regions[readers_of[j]];
				member[i] = r->addr < o->addr + o->len + LOG_NEAR && o->addr < r->addr + r->len + LOG_NEAR;
			}
		}
	/* A rewind from a site of this model to another site (AArch64: back to
	 * the MOV a BL depends on) needs that site's code, not its reader. */
	for (size_t k = 0; k < plog.nrewinds; k++) {
		long from = find_region(plog.rewinds[k].from, 1), to = find_region(plog.rewinds[k].to, 1);
		if (from >= 0 && to >= 0 && reader[from])
			member[to] = true;
	}
	snprintf(path, sizeof path, "%s/%ld-%06lu-%03u.model", plog.dir, (long)getpid(), plog.seq, part);
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "stitch: patch log %s: %s\n", path, strerror(errno));
		return;
	}
	fprintf(f, "# stitch patch log: %s, result %d, part %u of %u%s\n", plog.op, result, part + 1, parts,
		plog.overflow ? " (INCOMPLETE: out of memory or an over-long store)" : "");
	/* a protocol the library ran must be safe; an incomplete log is not a proof */
	fprintf(f, "# expect: %s\n", plog.overflow ? "UNSAFE" : "SAFE");
	fprintf(f, "model %s\narch %s\n\n", plog.op, LOG_ARCH);
	for (size_t i = 0; i < plog.nregions; i++) {
		if (!member[i])
			continue;
		const struct log_region *r = &plog.regions[i];
		fprintf(f, "code 0x%llx\ns%zu: ", (unsigned long long)r->addr, i);
		put_bytes(f, r->bytes, r->len);
		fprintf(f, "\n");
		if (r->site)
			fprintf(f, "site s%zu\n", i);
		fprintf(f, "\n");
	}
	fprintf(f, "writer\n");
	for (size_t i = 0; i < plog.nsteps; i++) {
		const struct log_step_rec *st = &plog.steps[i];
		switch (st->kind) {
		case LOG_STORE:
			if (!store_in_model(st, member))
				break;
			fprintf(f, "  store 0x%llx ", (unsigned long long)st->addr);
			put_bytes(f, st->bytes, st->len);
			fprintf(f, "\n");
			break;
		case LOG_SYNC:
			fprintf(f, "  sync\n");
			break;
		case LOG_QUIESCE:
			fprintf(f, "  quiesce\n");
			break;
		case LOG_STOP:
			fprintf(f, "  stop\n");
			break;
		case LOG_RESUME:
			fprintf(f, "  resume\n");
			break;
		}
	}
	fprintf(f, "\n");
	bool rewinds = false;
	for (size_t k = 0; k < plog.nrewinds; k++) {
		long from = find_region(plog.rewinds[k].from, 1);
		if (from < 0 || !reader[from])
			continue;
		fprintf(f, "rewind 0x%llx 0x%llx\n", (unsigned long long)plog.rewinds[k].from,
			(unsigned long long)plog.rewinds[k].to);
		rewinds = true;
	}
	/* with rewinds, readers may be parked anywhere (a stopped world) */
	int readers = 0;
	for (size_t i = 0; i < plog.nregions; i++)
		if (reader[i])
			fprintf(f, "reader r%d entry s%zu%s old-or-new\n", readers++, i, rewinds ? " preempt" : "");
	if (fclose(f))
		fprintf(stderr, "stitch: patch log %s: %s\n", path, strerror(errno));
}

void stitch_patch_log_end(int result)
{
	if (!plog.active)
		return;
	plog.active = false;
	size_t sites = 0;
	for (size_t i = 0; i < plog.nregions; i++)
		sites += plog.regions[i].site;
	unsigned parts = sites ? (unsigned)((sites + LOG_SITES_PER_MODEL - 1) / LOG_SITES_PER_MODEL) : 1;
	bool *member = calloc(2 * (plog.nregions ? plog.nregions : 1), sizeof(*member));
	if (!member) {
		fprintf(stderr, "stitch: patch log: out of memory\n");
		return;
	}
	for (unsigned part = 0; part < parts; part++)
		write_model(result, part, parts, member, member + (plog.nregions ? plog.nregions : 1));
	free(member);
	plog.seq++;
}
