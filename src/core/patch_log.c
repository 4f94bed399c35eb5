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

#include "core/internal.h"
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
#define LOG_MAX_REGIONS 16          /* stitch-check's MAX_REGIONS */
#define LOG_MAX_QRANGES 8           /* stitch-check's MAX_QRANGES: ranges of one quiesce in one model */
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
	bool data; /* a data region (a destination slot), not code */
};

struct log_step_rec {
	enum log_step kind;
	uintptr_t addr;
	size_t len;
	uint8_t bytes[LOG_MAX_BYTES];
	size_t qfirst, qcount; /* LOG_QUIESCE: its ranges in plog.qranges */
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
	/* where a stopped world's fixup (quiesce_step < 0) or a quiescence's
	 * (the step's index) moves a thread */
	struct log_rewind {
		uintptr_t from, to;
		long quiesce_step;
	} *rewinds;
	size_t nrewinds, cap_rewinds;
	struct log_range { uintptr_t start, end; } *qranges; /* what quiesce steps wait for */
	size_t nqranges, cap_qranges;
	/* a region that goes into the models of the site at `site` (a stub and
	 * the slot it loads: where that site's thread goes) */
	struct log_owner { size_t region; uintptr_t site; } *owners;
	size_t nowners, cap_owners;
	struct log_skip { uintptr_t site, to; } *skips; /* another acceptable outcome of a site */
	size_t nskips, cap_skips;
	unsigned depth; /* operations begun inside the one being recorded (they join it) */
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

static void add_region(uintptr_t addr, const uint8_t *bytes, size_t len, bool site, bool data)
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
	r->data = data;
	memcpy(r->bytes, bytes, len);
}

void stitch_patch_log_begin(const char *operation)
{
	if (!log_on())
		return;
	if (plog.active) {
		plog.depth++; /* a step of the operation being recorded */
		return;
	}
	plog.active = true;
	plog.overflow = false;
	plog.nregions = 0;
	sorted_regions = 0;
	plog.nsteps = 0;
	plog.nrewinds = 0;
	plog.nqranges = 0;
	plog.nowners = 0;
	plog.nskips = 0;
	snprintf(plog.op, sizeof plog.op, "%s", operation ? operation : "operation");
}

bool stitch_patch_log_active(void)
{
	return plog.active;
}

void stitch_patch_log_site(uintptr_t addr, const uint8_t *bytes, size_t len)
{
	if (plog.active)
		add_region(addr, bytes, len, true, false);
}

void stitch_patch_log_context(uintptr_t site, uintptr_t addr, size_t len, bool data)
{
	if (!plog.active)
		return;
	add_region(addr, (const uint8_t *)addr, len, false, data);
	long i = find_region(addr, len);
	if (i < 0)
		return; /* overflow, already marked */
	for (size_t k = plog.nowners; k-- > 0 && k + 8 >= plog.nowners;) /* (announced together) */
		if (plog.owners[k].region == (size_t)i && plog.owners[k].site == site)
			return;
	if (!grow((void **)&plog.owners, &plog.cap_owners, plog.nowners, sizeof(*plog.owners))) {
		plog.overflow = true;
		return;
	}
	plog.owners[plog.nowners++] = (struct log_owner){ (size_t)i, site };
}

void stitch_patch_log_skip(uintptr_t site, uintptr_t to)
{
	if (!plog.active)
		return;
	if (!grow((void **)&plog.skips, &plog.cap_skips, plog.nskips, sizeof(*plog.skips))) {
		plog.overflow = true;
		return;
	}
	plog.skips[plog.nskips++] = (struct log_skip){ site, to };
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
	st->qfirst = st->qcount = 0;
	if (len)
		memcpy(st->bytes, bytes, len);
}

void stitch_patch_log_store(uintptr_t addr, const uint8_t *bytes, size_t len)
{
	if (!plog.active)
		return;
	/* bytes outside every site: record what is there now (the store has not happened yet) */
	if (!covered(addr, len))
		add_region(addr, (const uint8_t *)addr, len, false, false);
	add_step(LOG_STORE, addr, bytes, len);
}

void stitch_patch_log_store_data(uintptr_t addr, const uint8_t *bytes, size_t len)
{
	if (!plog.active)
		return;
	if (!covered(addr, len))
		add_region(addr, (const uint8_t *)addr, len, false, true);
	add_step(LOG_STORE, addr, bytes, len);
}

void stitch_patch_log_sync(void)
{
	if (plog.active)
		add_step(LOG_SYNC, 0, NULL, 0);
}

/* The fixup's moves at every instruction boundary of every site logged so far. */
static void add_rewinds(bool (*fixup)(uintptr_t *pc, void *arg), void *arg, long quiesce_step)
{
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
			plog.rewinds[plog.nrewinds++] = (struct log_rewind){ pc, to, quiesce_step };
		}
	}
}

void stitch_patch_log_quiesce(const struct stitch_range *ranges, size_t n, bool (*fixup)(uintptr_t *pc, void *arg),
			      void *arg)
{
	if (!plog.active)
		return;
	add_step(LOG_QUIESCE, 0, NULL, 0);
	if (plog.overflow)
		return;
	struct log_step_rec *st = &plog.steps[plog.nsteps - 1];
	st->qfirst = plog.nqranges;
	st->qcount = 0;
	for (size_t k = 0; k < n; k++) {
		if (!grow((void **)&plog.qranges, &plog.cap_qranges, plog.nqranges, sizeof(*plog.qranges))) {
			plog.overflow = true;
			return;
		}
		plog.qranges[plog.nqranges++] = (struct log_range){ ranges[k].start, ranges[k].end };
		st->qcount++;
	}
	add_rewinds(fixup, arg, (long)plog.nsteps - 1);
}

void stitch_patch_log_stop(bool (*fixup)(uintptr_t *pc, void *arg), void *arg)
{
	if (!plog.active)
		return;
	add_step(LOG_STOP, 0, NULL, 0);
	add_rewinds(fixup, arg, -1);
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


/*
 * Which model each site goes into: at most LOG_SITES_PER_MODEL, and with
 * the regions they own (stubs, slots) at most `budget` regions.
 */
static unsigned partition(unsigned *part, const long *owner_site, size_t budget, unsigned per_model)
{
	unsigned p = 0, nsites = 0;
	size_t nreg = 0;
	for (size_t i = 0; i < plog.nregions; i++)
		part[i] = 0;
	for (size_t k = 0; k < plog.nowners; k++) /* part[] counts each site's regions first */
		if (owner_site[k] >= 0)
			part[owner_site[k]]++;
	for (size_t i = 0; i < plog.nregions; i++) {
		if (!plog.regions[i].site)
			continue;
		size_t need = 1 + part[i];
		if (nsites && (nsites == per_model || nreg + need > budget)) {
			p++;
			nsites = 0;
			nreg = 0;
		}
		part[i] = p;
		nsites++;
		nreg += need;
	}
	return nsites ? p + 1 : 1;
}

static void put_range(FILE *f, uintptr_t a, uintptr_t b)
{
	fprintf(f, " 0x%llx 0x%llx", (unsigned long long)a, (unsigned long long)b);
}

/* The ranges of a quiesce step that hold code or data of this model (the others hold no reader); written to f if not NULL. */
static size_t quiesce_ranges(const struct log_step_rec *st, const bool *member, FILE *f)
{
	size_t nq = 0;
	for (size_t q = st->qfirst; q < st->qfirst + st->qcount; q++) {
		const struct log_range *g = &plog.qranges[q];
		bool hit = false;
		for (size_t j = 0; j < plog.nregions && !hit; j++)
			hit = member[j] && g->start < plog.regions[j].addr + plog.regions[j].len &&
			      plog.regions[j].addr < g->end;
		if (hit && f)
			put_range(f, g->start, g->end);
		nq += hit;
	}
	return nq;
}

/* Model `part` holds the sites of that part, the regions they own, and every other non-site region. */
static void write_model(int result, unsigned part, unsigned parts, const unsigned *part_of, const long *owner_site,
			const bool *owned, bool *member, bool *reader)
{
	char path[4200];
	size_t others = 0, readers_of[LOG_SITES_PER_MODEL], nreaders = 0;
	bool incomplete = plog.overflow;
	for (size_t i = 0; i < plog.nregions; i++) {
		bool own = owned[i];
		member[i] = !plog.regions[i].site ? !own : part_of[i] == part;
		reader[i] = plog.regions[i].site && part_of[i] == part;
		if (reader[i] && nreaders < LOG_SITES_PER_MODEL)
			readers_of[nreaders++] = i;
		others += !plog.regions[i].site && !own;
	}
	/* Regions that are no site (a literal an operation stores) go into
	 * every model, unless there are more than a model can hold (one per
	 * traced function when a stopped world prepares many sites): then each
	 * goes only with the sites it stands next to. */
	if (others > LOG_OTHERS_IN_EVERY_MODEL)
		for (size_t i = 0; i < plog.nregions; i++) {
			if (plog.regions[i].site || owned[i])
				continue;
			const struct log_region *o = &plog.regions[i];
			member[i] = false;
			for (size_t j = 0; j < nreaders && !member[i]; j++) {
				const struct log_region *r = &plog.regions[readers_of[j]];
				member[i] = r->addr < o->addr + o->len + LOG_NEAR && o->addr < r->addr + r->len + LOG_NEAR;
			}
		}
	/* A site's own regions (where its thread goes: a stub, its slot). */
	for (size_t k = 0; k < plog.nowners; k++)
		if (owner_site[k] >= 0 && reader[owner_site[k]])
			member[plog.owners[k].region] = true;
	/* A rewind from a site of this model to another site (AArch64: back to
	 * the MOV a BL depends on) needs that site's code, not its reader. */
	for (size_t k = 0; k < plog.nrewinds; k++) {
		long from = find_region(plog.rewinds[k].from, 1), to = find_region(plog.rewinds[k].to, 1);
		if (from >= 0 && to >= 0 && reader[from])
			member[to] = true;
	}
	size_t nmember = 0;
	for (size_t i = 0; i < plog.nregions; i++)
		nmember += member[i];
	if (nmember > LOG_MAX_REGIONS)
		incomplete = true;
	for (size_t i = 0; i < plog.nsteps; i++)
		if (plog.steps[i].kind == LOG_QUIESCE && quiesce_ranges(&plog.steps[i], member, NULL) > LOG_MAX_QRANGES)
			incomplete = true;
	snprintf(path, sizeof path, "%s/%ld-%06lu-%03u.model", plog.dir, (long)getpid(), plog.seq, part);
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "stitch: patch log %s: %s\n", path, strerror(errno));
		return;
	}
	fprintf(f, "# stitch patch log: %s, result %d, part %u of %u%s\n", plog.op, result, part + 1, parts,
		incomplete ? " (INCOMPLETE: out of memory, an over-long store, or more than the checker takes)" : "");
	/* a protocol the library ran must be safe; an incomplete log is not a proof */
	fprintf(f, "# expect: %s\n", incomplete ? "UNSAFE" : "SAFE");
	fprintf(f, "model %s\narch %s\n\n", plog.op, LOG_ARCH);
	for (size_t i = 0; i < plog.nregions; i++) {
		if (!member[i])
			continue;
		const struct log_region *r = &plog.regions[i];
		fprintf(f, "%s 0x%llx\ns%zu: ", r->data ? "data" : "code", (unsigned long long)r->addr, i);
		put_bytes(f, r->bytes, r->len);
		fprintf(f, "\n");
		if (r->site)
			fprintf(f, "site s%zu\n", i);
		fprintf(f, "\n");
	}
	/* other outcomes a site's thread may have (a retarget's J +8: untraced) */
	for (size_t k = 0; k < plog.nskips; k++) {
		long i = find_region(plog.skips[k].site, 1), t = find_region(plog.skips[k].to, 1);
		if (i >= 0 && reader[i] && (t < 0 || !member[t]))
			fprintf(f, "func s%ld_skip%zu 0x%llx\n", i, k, (unsigned long long)plog.skips[k].to);
	}
	/* the rewinds of this model's sites, and which quiescence applies them */
	bool rewinds = false;
	for (size_t k = 0; k < plog.nrewinds; k++) {
		long from = find_region(plog.rewinds[k].from, 1);
		rewinds |= from >= 0 && reader[from];
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
		case LOG_QUIESCE: {
			for (size_t k = 0; k < plog.nrewinds; k++) {
				long from = find_region(plog.rewinds[k].from, 1);
				if (plog.rewinds[k].quiesce_step == (long)i && from >= 0 && reader[from]) {
					fprintf(f, "  label q%zu\n", i);
					break;
				}
			}
			fprintf(f, "  quiesce");
			if (!quiesce_ranges(st, member, f)) /* none: a wait for nothing here (still a handshake) */
				put_range(f, st->qcount ? plog.qranges[st->qfirst].start : 0,
					  st->qcount ? plog.qranges[st->qfirst].end : 1);
			fprintf(f, "\n");
			break;
		}
		case LOG_STOP:
			fprintf(f, "  stop\n");
			break;
		case LOG_RESUME:
			fprintf(f, "  resume\n");
			break;
		}
	}
	fprintf(f, "\n");
	for (size_t k = 0; k < plog.nrewinds; k++) {
		const struct log_rewind *w = &plog.rewinds[k];
		long from = find_region(w->from, 1);
		if (from < 0 || !reader[from])
			continue;
		fprintf(f, "rewind 0x%llx 0x%llx", (unsigned long long)w->from, (unsigned long long)w->to);
		if (w->quiesce_step >= 0)
			fprintf(f, " on quiesce q%ld", w->quiesce_step);
		fprintf(f, "\n");
	}
	/* with rewinds, readers may be parked anywhere (a stopped world) */
	int readers = 0;
	for (size_t i = 0; i < plog.nregions; i++) {
		if (!reader[i])
			continue;
		fprintf(f, "reader r%d entry s%zu%s old-or-new\n", readers++, i, rewinds ? " preempt" : "");
		for (size_t k = 0; k < plog.nskips; k++) {
			long t = find_region(plog.skips[k].to, 1);
			if (find_region(plog.skips[k].site, 1) == (long)i && (t < 0 || !member[t]))
				fprintf(f, "  accept skipped reach s%zu_skip%zu\n", i, k);
		}
	}
	if (fclose(f))
		fprintf(stderr, "stitch: patch log %s: %s\n", path, strerror(errno));
}

static int cmp_region(const void *a, const void *b)
{
	uintptr_t x = plog.regions[*(const size_t *)a].addr, y = plog.regions[*(const size_t *)b].addr;
	return x < y ? -1 : x > y;
}

/* Sort the regions by address (stubs and slots are announced out of
 * order, and lookups past the sorted prefix are linear). */
static void sort_regions(void)
{
	if (sorted_regions == plog.nregions)
		return;
	size_t n = plog.nregions, *ord = malloc(n * sizeof(*ord)), *where = malloc(n * sizeof(*where));
	struct log_region *v = malloc(n * sizeof(*v));
	if (!ord || !where || !v) {
		free(ord), free(where), free(v);
		return; /* still correct, only slower */
	}
	for (size_t i = 0; i < n; i++)
		ord[i] = i;
	qsort(ord, n, sizeof(*ord), cmp_region);
	for (size_t i = 0; i < n; i++) {
		v[i] = plog.regions[ord[i]];
		where[ord[i]] = i;
	}
	memcpy(plog.regions, v, n * sizeof(*v));
	for (size_t k = 0; k < plog.nowners; k++)
		plog.owners[k].region = where[plog.owners[k].region];
	sorted_regions = n;
	free(ord), free(where), free(v);
}

void stitch_patch_log_end(int result)
{
	if (!plog.active)
		return;
	if (plog.depth) {
		plog.depth--; /* a step of a longer operation: it goes on */
		return;
	}
	plog.active = false;
	bool wrote = false;
	for (size_t i = 0; i < plog.nsteps && !wrote; i++)
		wrote = plog.steps[i].kind == LOG_STORE;
	if (!wrote)
		return; /* nothing was written: nothing to check */
	sort_regions();
	size_t n = plog.nregions ? plog.nregions : 1, others = 0;
	bool *member = calloc(3 * n, sizeof(*member));
	unsigned *part_of = calloc(n, sizeof(*part_of));
	long *owner_site = calloc(plog.nowners ? plog.nowners : 1, sizeof(*owner_site));
	if (!member || !part_of || !owner_site) {
		fprintf(stderr, "stitch: patch log: out of memory\n");
		free(member);
		free(part_of);
		free(owner_site);
		return;
	}
	bool *owned = member + 2 * n; /* owned: goes with some site */
	for (size_t k = 0; k < plog.nowners; k++) {
		long j = find_region(plog.owners[k].site, 1);
		owner_site[k] = j >= 0 && plog.regions[j].site ? j : -1;
		if (owner_site[k] >= 0 && !plog.regions[plog.owners[k].region].site)
			owned[plog.owners[k].region] = true;
	}
	for (size_t i = 0; i < plog.nregions; i++)
		others += !plog.regions[i].site && !owned[i];
	/* room for the regions of every model (at most LOG_OTHERS_IN_EVERY_MODEL, or the literals next to its sites) */
	size_t reserve = others < LOG_OTHERS_IN_EVERY_MODEL ? others : LOG_OTHERS_IN_EVERY_MODEL;
	/* Readers never interact (only the writer's quiesce waits for all of
	 * them, and a stopped world for none), so a site checked alone is
	 * checked as well as with others; they share models only to keep
	 * their number down.  But the states multiply: readers that may be
	 * descheduled (an operation with rewinds) or run through a stub have
	 * about a hundred states each, so those sites get a model each. */
	unsigned per_model = plog.nrewinds || plog.nowners ? 1 : LOG_SITES_PER_MODEL;
	unsigned parts = partition(part_of, owner_site, LOG_MAX_REGIONS - reserve, per_model);
	for (unsigned part = 0; part < parts; part++)
		write_model(result, part, parts, part_of, owner_site, owned, member, member + n);
	free(member);
	free(part_of);
	free(owner_site);
	plog.seq++;
}
