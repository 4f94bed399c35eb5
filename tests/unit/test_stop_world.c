/* SPDX-License-Identifier: MIT */
/*
 * Stop the world: while stopped, no other thread makes progress (workers,
 * and threads that a spawner keeps creating); an instruction change that is
 * not allowed live (a MOV immediate, outside AArch64's CMODX list) is made
 * while stopped and every thread sees only the new code after resuming;
 * a fixup moves parked threads out of a loop.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "common/check.h"
#include "common/spin_loop.h"
#include "core/internal.h"

/* victim() returns 1; its immediate is rewritten to 2 while the world is stopped. */
int victim(void);
#if defined(__x86_64__)
__asm__(".text\n.p2align 4\n.globl victim\n.type victim, @function\nvictim:\n movl $1, %eax\n ret\n"
	".size victim, . - victim\n");
#define VICTIM_OFFSET 1
#define VICTIM_LEN 1
static const uint8_t victim_new[] = { 2 };
#elif defined(__aarch64__)
__asm__(".text\n.p2align 3\n.globl victim\n.type victim, %function\nvictim:\n movz w0, #1\n ret\n"
	".size victim, . - victim\n");
#define VICTIM_OFFSET 0
#define VICTIM_LEN 4
static const uint8_t victim_new[] = { 0x40, 0x00, 0x80, 0x52 }; /* movz w0, #2 */
#elif defined(__riscv)
__asm__(".text\n.p2align 2\n.globl victim\n.type victim, @function\nvictim:\n.option push\n.option norvc\n"
	" addi a0, zero, 1\n ret\n.option pop\n.size victim, . - victim\n");
#define VICTIM_OFFSET 0
#define VICTIM_LEN 4
static const uint8_t victim_new[] = { 0x13, 0x05, 0x20, 0x00 }; /* addi a0, zero, 2 */
#endif

#define NWORKERS 3
static atomic_ulong progress[NWORKERS];
static atomic_ulong saw_old_after_resume;
static atomic_int phase; /* 2 once resume has returned: only the new code may run */
static atomic_int stop_all;
static atomic_ulong children_run;

static void *worker(void *arg)
{
	atomic_ulong *p = arg;
	while (!atomic_load(&stop_all)) {
		int ph = atomic_load(&phase);
		int v = victim();
		if (v != 1 && v != 2)
			atomic_fetch_add(&saw_old_after_resume, 1000000); /* garbage */
		if (ph == 2 && v == 1)
			atomic_fetch_add(&saw_old_after_resume, 1);
		atomic_fetch_add(p, 1);
	}
	return NULL;
}

static void *child(void *arg)
{
	(void)arg;
	atomic_fetch_add(&children_run, 1);
	return NULL;
}

static void *spawner(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_all)) {
		pthread_t t;
		if (pthread_create(&t, NULL, child, NULL) == 0)
			pthread_join(t, NULL);
	}
	return NULL;
}

static atomic_int spinner_out;
static void *spinner(void *arg)
{
	(void)arg;
	spin_loop();
	atomic_store(&spinner_out, 1);
	return NULL;
}

static unsigned long long st_fixups_during_stop;

static unsigned long total_progress(void)
{
	unsigned long t = atomic_load(&children_run);
	for (int i = 0; i < NWORKERS; i++)
		t += atomic_load(&progress[i]);
	return t;
}

int main(void)
{
	CHECK(stitch_init() == 0, "init: %s", stitch_last_error());
	pthread_t w[NWORKERS], sp, spin;
	for (int i = 0; i < NWORKERS; i++)
		pthread_create(&w[i], NULL, worker, &progress[i]);
	pthread_create(&sp, NULL, spawner, NULL);
	pthread_create(&spin, NULL, spinner, NULL);
	/* The spinner must be inside its loop, so that the stop's fixup has
	 * something to move; and every worker must have run once. */
	while (spin_count == 0)
		sched_yield();
	/* Let every worker run at least once (progress, not time). */
	for (int i = 0; i < NWORKERS; i++)
		while (atomic_load(&progress[i]) == 0)
			sched_yield();

	stitch_update_lock();
	int err = stitch_stop_world(escape_fixup, NULL);
	CHECK(err == 0, "stop: %s", stitch_last_error());
	/* Nobody moves while stopped. */
	unsigned long before = total_progress();
	for (int i = 0; i < 20000; i++)
		sched_yield();
	CHECK_EQ(total_progress(), before);

	/* A non-CMODX change, allowed because nobody executes. */
	struct stitch_patch p = { .addr = (uintptr_t)victim + VICTIM_OFFSET, .len = VICTIM_LEN };
	memcpy(p.new_bytes, victim_new, VICTIM_LEN);
	err = stitch_text_open(&p, 1);
	if (!err)
		err = stitch_text_store(p.addr, victim_new, VICTIM_LEN);
	if (!err)
		err = stitch_text_close();
	if (!err)
		err = stitch_text_sync(&p, 1);
	CHECK(err == 0, "write: %s", stitch_last_error());
	CHECK_EQ(total_progress(), before);
	struct stitch_stats during;
	stitch_get_stats(&during);
	st_fixups_during_stop = during.quiesce_fixups;
	stitch_resume_world();
	atomic_store(&phase, 2);
	stitch_update_unlock();

	/* Everyone runs again, and sees only the new code. */
	for (int i = 0; i < NWORKERS; i++) {
		unsigned long seen = atomic_load(&progress[i]);
		while (atomic_load(&progress[i]) < seen + 1000)
			sched_yield();
	}
	pthread_join(spin, NULL);
	CHECK(atomic_load(&spinner_out), "the fixup moved the parked spinner out of its loop");
	CHECK(st_fixups_during_stop > 0, "the stop's fixup ran");
	atomic_store(&stop_all, 1);
	for (int i = 0; i < NWORKERS; i++)
		pthread_join(w[i], NULL);
	pthread_join(sp, NULL);
	CHECK_EQ(victim(), 2);
	CHECK_EQ(atomic_load(&saw_old_after_resume), 0);
	struct stitch_stats st;
	stitch_get_stats(&st);
	printf("stop_world: %lu units of progress before the stop, %llu rounds, %llu fixups\n", before,
	       (unsigned long long)st.quiesce_rounds, (unsigned long long)st.quiesce_fixups);
	return check_summary("test_stop_world");
}
