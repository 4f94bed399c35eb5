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

#define LOG_MAX_SITES 16 /* regions per operation; more are dropped (and the model says so) */
#define LOG_MAX_STEPS 256
#define LOG_MAX_BYTES 64
#define LOG_MAX_READERS 4 /* stitch-check explores at most four readers */

#if defined(__x86_64__)
#define LOG_ARCH "x86_64"
#elif defined(__aarch64__)
#define LOG_ARCH "aarch64"
#elif defined(__riscv) && __riscv_xlen == 64
#define LOG_ARCH "riscv64"
#else
#error "patch_log: unsupported architecture"
#endif

enum log_step { LOG_STORE, LOG_SYNC, LOG_QUIESCE };

struct log_region {
	uintptr_t addr;
	size_t len;
	uint8_t bytes[LOG_MAX_BYTES];
	bool site; /* announced as a site (gets a reader), or only covers a store */
};

static struct {
	int state; /* 0 = not yet looked at the environment, 1 = off, 2 = on */
	char dir[4096];
	unsigned long seq;
	bool active; /* between begin and end */
	bool overflow;
	char op[128];
	int nregions;
	struct log_region regions[LOG_MAX_SITES];
	int nsteps;
	struct {
		enum log_step kind;
		uintptr_t addr;
		size_t len;
		uint8_t bytes[LOG_MAX_BYTES];
	} steps[LOG_MAX_STEPS];
} plog;

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

static bool covered(uintptr_t addr, size_t len)
{
	for (int i = 0; i < plog.nregions; i++) {
		const struct log_region *r = &plog.regions[i];
		if (addr >= r->addr && addr + len <= r->addr + r->len)
			return true;
	}
	return false;
}

static void add_region(uintptr_t addr, const uint8_t *bytes, size_t len, bool site)
{
	if (covered(addr, len))
		return;
	if (plog.nregions == LOG_MAX_SITES || len > LOG_MAX_BYTES) {
		plog.overflow = true;
		return;
	}
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
	plog.nsteps = 0;
	snprintf(plog.op, sizeof plog.op, "%s", operation ? operation : "operation");
}

void stitch_patch_log_site(uintptr_t addr, const uint8_t *bytes, size_t len)
{
	if (plog.active)
		add_region(addr, bytes, len, true);
}

static void add_step(enum log_step kind, uintptr_t addr, const uint8_t *bytes, size_t len)
{
	if (plog.nsteps == LOG_MAX_STEPS || len > LOG_MAX_BYTES) {
		plog.overflow = true;
		return;
	}
	plog.steps[plog.nsteps].kind = kind;
	plog.steps[plog.nsteps].addr = addr;
	plog.steps[plog.nsteps].len = len;
	if (len)
		memcpy(plog.steps[plog.nsteps].bytes, bytes, len);
	plog.nsteps++;
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

static void put_bytes(FILE *f, const uint8_t *b, size_t n)
{
	fputs(".bytes", f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, " %02x", b[i]);
}

void stitch_patch_log_end(int result)
{
	char path[4200];
	FILE *f;
	int readers = 0;

	if (!plog.active)
		return;
	plog.active = false;
	snprintf(path, sizeof path, "%s/%ld-%06lu.model", plog.dir, (long)getpid(), plog.seq++);
	f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "stitch: patch log %s: %s\n", path, strerror(errno));
		return;
	}
	fprintf(f, "# stitch patch log: %s, result %d%s\n", plog.op, result,
		plog.overflow ? " (TRUNCATED: too many sites or steps)" : "");
	/* a protocol the library ran must be safe; a truncated log is not a proof */
	fprintf(f, "# expect: %s\n", plog.overflow ? "UNSAFE" : "SAFE");
	fprintf(f, "model %s\narch %s\n\n", plog.op, LOG_ARCH);
	for (int i = 0; i < plog.nregions; i++) {
		const struct log_region *r = &plog.regions[i];
		fprintf(f, "code 0x%llx\ns%d: ", (unsigned long long)r->addr, i);
		put_bytes(f, r->bytes, r->len);
		fprintf(f, "\n");
		if (r->site)
			fprintf(f, "site s%d\n", i);
		fprintf(f, "\n");
	}
	fprintf(f, "writer\n");
	for (int i = 0; i < plog.nsteps; i++) {
		switch (plog.steps[i].kind) {
		case LOG_STORE:
			fprintf(f, "  store 0x%llx ", (unsigned long long)plog.steps[i].addr);
			put_bytes(f, plog.steps[i].bytes, plog.steps[i].len);
			fprintf(f, "\n");
			break;
		case LOG_SYNC:
			fprintf(f, "  sync\n");
			break;
		case LOG_QUIESCE:
			fprintf(f, "  quiesce\n");
			break;
		}
	}
	fprintf(f, "\n");
	for (int i = 0; i < plog.nregions && readers < LOG_MAX_READERS; i++)
		if (plog.regions[i].site)
			fprintf(f, "reader r%d entry s%d old-or-new\n", readers++, i);
	if (fclose(f))
		fprintf(stderr, "stitch: patch log %s: %s\n", path, strerror(errno));
}
