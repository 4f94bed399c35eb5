/* SPDX-License-Identifier: MIT */
/*
 * Direct calls: sites enter a trampoline of the test's own (a few
 * instructions of assembly per architecture that count and return as
 * stitch/ftrace.h prescribes) instead of the dispatcher.  Checks counts,
 * that a direct call owns its sites, retargeting by filter, and switching
 * while threads run through the sites.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <stitch/ftrace.h>

#include "common/check.h"
#include "funcs.h"
#include "site_bytes.h"

long direct_hits;  /* incremented atomically by direct_tramp */
static unsigned char not_code[16]; /* writable data (never in an executable segment, as .rodata may be), for the bad-input checks */
long direct_hits2; /* ... by direct_tramp2 (stitch_ftrace_modify_direct) */
extern char direct_tramp[], direct_tramp_end[], direct_tramp2[], direct_tramp2_end[];

#if defined(__x86_64__)
__asm__(".text\n"
	".globl direct_tramp\n"
	"direct_tramp:\n"
	"	lock incq direct_hits(%rip)\n"
	"	ret\n"
	".globl direct_tramp_end\n"
	"direct_tramp_end:\n"
	".globl direct_tramp2\n"
	"direct_tramp2:\n"
	"	lock incq direct_hits2(%rip)\n"
	"	ret\n"
	".globl direct_tramp2_end\n"
	"direct_tramp2_end:\n");
#elif defined(__aarch64__)
__asm__(".text\n"
	".p2align 2\n"
	".globl direct_tramp\n"
	"direct_tramp:\n"
	"	hint #34\n" /* BTI C */
	"	adrp x16, direct_hits\n"
	"	add x16, x16, :lo12:direct_hits\n"
	"1:	ldaxr x17, [x16]\n"
	"	add x17, x17, #1\n"
	"	stlxr w15, x17, [x16]\n"
	"	cbnz w15, 1b\n"
	"	mov x16, x30\n"
	"	mov x30, x9\n"
	"	ret x16\n"
	".globl direct_tramp_end\n"
	"direct_tramp_end:\n"
	".globl direct_tramp2\n"
	"direct_tramp2:\n"
	"	hint #34\n"
	"	adrp x16, direct_hits2\n"
	"	add x16, x16, :lo12:direct_hits2\n"
	"1:	ldaxr x17, [x16]\n"
	"	add x17, x17, #1\n"
	"	stlxr w15, x17, [x16]\n"
	"	cbnz w15, 1b\n"
	"	mov x16, x30\n"
	"	mov x30, x9\n"
	"	ret x16\n"
	".globl direct_tramp2_end\n"
	"direct_tramp2_end:\n");
#else
__asm__(".text\n"
	".p2align 2\n"
	".globl direct_tramp\n"
	"direct_tramp:\n"
	"	lla t1, direct_hits\n"
	"	li t2, 1\n"
	"	amoadd.d zero, t2, (t1)\n"
	"	jr t0\n"
	".globl direct_tramp_end\n"
	"direct_tramp_end:\n"
	/* another 4 KiB page: moving between the two changes the sites' AUIPC
	 * in the retarget mode (the 3-step), and, 0x40 into it, their JALR as
	 * well (direct_tramp starts a page of its own: the section is
	 * page-aligned), so every step of the 3-step writes */
	".p2align 12\n"
	".skip 0x40\n"
	".globl direct_tramp2\n"
	"direct_tramp2:\n"
	"	lla t1, direct_hits2\n"
	"	li t2, 1\n"
	"	amoadd.d zero, t2, (t1)\n"
	"	jr t0\n"
	".globl direct_tramp2_end\n"
	"direct_tramp2_end:\n");
#endif

static long hits(void)
{
	return __atomic_load_n(&direct_hits, __ATOMIC_SEQ_CST);
}

static long hits2(void)
{
	return __atomic_load_n(&direct_hits2, __ATOMIC_SEQ_CST);
}

static _Atomic long cb_calls;
static void cb(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
	atomic_fetch_add(&cb_calls, 1);
}

/* Calls functions [from, to) of tf_table once; counts wrong results. */
static int call_range(int from, int to)
{
	int wrong = 0;
	for (int i = from; i < to; i++)
		wrong += tf_table[i](i) != 4 * i;
	return wrong;
}

static _Atomic long ret_calls;
static void ret_cb(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_ret_regs *rregs)
{
	(void)ip, (void)parent, (void)ops, (void)rregs;
	atomic_fetch_add(&ret_calls, 1);
}

static _Atomic int stop;
static _Atomic long worker_wrong;
static void *worker(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop))
		atomic_fetch_add(&worker_wrong, call_range(512, 768));
	return NULL;
}

/*
 * A direct call and a function_graph tracer take turns on tf_c* while two
 * threads run through them.  On x86-64 the site's instruction changes kind
 * at each turn (the call for the direct call, the jump for tracers), and a
 * thread that took one just before must still find a trampoline of its
 * kind: every result right, and after each register or unregister returns,
 * only the ops registered then sees the main thread's calls.
 */
static void direct_and_graph_turns(struct stitch_ftrace_ops *d, int turns)
{
	struct stitch_ftrace_ops g = { .func = cb, .ret_func = ret_cb };
	pthread_t th[2];
	atomic_store(&stop, 0);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (int r = 0; r < turns; r++) {
		CHECK(stitch_ftrace_register(d, "tf_c*") == 0, "register direct: %s", stitch_last_error());
		long h = hits(), c = cb_calls, rc = ret_calls;
		CHECK_EQ(call_range(512, 768), 0);
		CHECK(hits() - h >= 256 && cb_calls == c && ret_calls == rc,
		      "turn %d, direct: +%ld direct, +%ld entries, +%ld returns", r, hits() - h, cb_calls - c,
		      ret_calls - rc);
		CHECK(stitch_ftrace_unregister(d) == 0, "unregister direct: %s", stitch_last_error());
		CHECK(stitch_ftrace_register(&g, "tf_c*") == 0, "register graph: %s", stitch_last_error());
		h = hits(), c = cb_calls, rc = ret_calls;
		CHECK_EQ(call_range(512, 768), 0);
		CHECK(hits() == h && cb_calls - c >= 256 && ret_calls - rc >= 256,
		      "turn %d, graph: +%ld direct, +%ld entries, +%ld returns", r, hits() - h, cb_calls - c,
		      ret_calls - rc);
		CHECK(stitch_ftrace_unregister(&g) == 0, "unregister graph: %s", stitch_last_error());
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ(worker_wrong, 0);
}

/* test_ftrace_direct [MOVES [SWITCHES]]: live moves between the two
 * trampolines (default 40), unregister/register rounds (default 20), and
 * as many turns of a direct call and a tracer on the same sites */
int main(int argc, char **argv)
{
	int moves = argc > 1 ? atoi(argv[1]) : 40, switches = argc > 2 ? atoi(argv[2]) : 20;
	CHECK_EQ(stitch_init(), 0);
	int n = stitch_ftrace_site_count();
	CHECK(n > TF_COUNT, "site count %d", n);
	struct stitch_ftrace_ops d = { .direct = direct_tramp, .direct_size = (size_t)(direct_tramp_end - direct_tramp) };
	struct stitch_ftrace_ops t = { .func = cb };

	/* tf_a* (0..255) enter the direct trampoline */
	CHECK(stitch_ftrace_register(&d, "tf_a*") == 0, "register direct: %s", stitch_last_error());
	CHECK_EQ(stitch_ftrace_ops_site_count(&d), 256);
	direct_hits = 0;
	CHECK_EQ(call_range(0, TF_COUNT), 0);
	CHECK_EQ(hits(), 256);

	/* a direct call owns its sites: nothing changes */
	CHECK_EQ(stitch_ftrace_register(&t, "tf_a00*"), -STITCH_EINVAL);
	printf("shared site: %s\n", stitch_last_error());
	CHECK(stitch_ftrace_register(&t, "tf_b*") == 0, "register tracer: %s", stitch_last_error());
	CHECK_EQ(stitch_ftrace_set_filter(&t, "tf_b* tf_a1*"), -STITCH_EINVAL);
	CHECK_EQ(stitch_ftrace_ops_site_count(&t), 256);
	direct_hits = 0;
	cb_calls = 0;
	CHECK_EQ(call_range(0, TF_COUNT), 0);
	CHECK_EQ(hits(), 256);
	CHECK_EQ(cb_calls, 256);

	/* move the direct call to tf_c* (512..767) */
	CHECK(stitch_ftrace_set_filter(&d, "tf_c*") == 0, "set_filter direct: %s", stitch_last_error());
	direct_hits = 0;
	CHECK_EQ(call_range(0, 512), 0);
	CHECK_EQ(hits(), 0);
	CHECK_EQ(call_range(512, 768), 0);
	CHECK_EQ(hits(), 256);

	/* switch on and off while two threads run through the sites */
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (int r = 0; r < switches; r++) {
		CHECK(stitch_ftrace_unregister(&d) == 0, "unregister: %s", stitch_last_error());
		long h = hits();
		CHECK_EQ(call_range(512, 768), 0);
		CHECK_EQ(hits(), h); /* after unregister returned: no thread enters it */
		CHECK(stitch_ftrace_register(&d, r % 2 ? "tf_c*" : "tf_c0* tf_c1*") == 0, "register: %s",
		      stitch_last_error());
	}

	/* move the live direct call between two trampolines (modify_direct)
	 * while the threads run: after each move returns, calls enter only the
	 * new one; moving to where it is changes nothing */
	/* a second direct call into the same trampoline, on tf_d*: it shares
	 * the first one's table slot on RISC-V, and must not move with it */
	struct stitch_ftrace_ops d2 = { .direct = direct_tramp, .direct_size = (size_t)(direct_tramp_end - direct_tramp) };
	CHECK(stitch_ftrace_register(&d2, "tf_d*") == 0, "register d2: %s", stitch_last_error());
	char *tr[2] = { direct_tramp, direct_tramp2 };
	size_t tr_size[2] = { (size_t)(direct_tramp_end - direct_tramp), (size_t)(direct_tramp2_end - direct_tramp2) };
	for (int r = 1; r <= moves; r++) {
		int to = r % 2;
		int e = stitch_ftrace_modify_direct(&d, tr[to], tr_size[to]);
		CHECK(e == 0, "modify_direct: %s", stitch_last_error());
		CHECK(d.direct == tr[to], "ops->direct not updated");
		long h1 = hits(), h2 = hits2();
		CHECK_EQ(call_range(512, 768), 0);
		long got1 = hits() - h1, got2 = hits2() - h2;
		CHECK(to ? got1 == 0 && got2 >= 128 : got2 == 0 && got1 >= 128,
		      "after moving to trampoline %d: +%ld in 1, +%ld in 2", to + 1, got1, got2);
		/* while d is in trampoline 2 (where the workers' calls go), the
		 * calls of d2's sites are exactly what enters trampoline 1 */
		h1 = hits();
		CHECK_EQ(call_range(768, 1024), 0);
		if (to == 1)
			CHECK(hits() - h1 == 256, "d2 moved with d: +%ld in trampoline 1", hits() - h1);
	}
	CHECK_EQ(stitch_ftrace_unregister(&d2), 0);
	/* d alone in its trampoline: on RISC-V's table mode a move is one data
	 * store into its slot */
	for (int r = 1; r <= 4; r++) {
		int to = r % 2;
		CHECK(stitch_ftrace_modify_direct(&d, tr[to], tr_size[to]) == 0, "modify_direct: %s", stitch_last_error());
		long h1 = hits(), h2 = hits2();
		CHECK_EQ(call_range(512, 768), 0);
		CHECK(to ? hits2() - h2 >= 256 && hits() == h1 : hits() - h1 >= 256 && hits2() == h2,
		      "after moving to trampoline %d alone: +%ld in 1, +%ld in 2", to + 1, hits() - h1, hits2() - h2);
	}
	CHECK_EQ(stitch_ftrace_modify_direct(&d, direct_tramp, tr_size[0]), 0);
	CHECK_EQ(stitch_ftrace_modify_direct(&d, direct_tramp, tr_size[0]), 0);
	CHECK_EQ(stitch_ftrace_modify_direct(&t, direct_tramp2, tr_size[1]), -STITCH_EINVAL); /* not direct */
	CHECK_EQ(stitch_ftrace_modify_direct(&d, NULL, 4), -STITCH_EINVAL);
	CHECK_EQ(stitch_ftrace_modify_direct(&d, (void *)not_code, sizeof(not_code)), -STITCH_EINVAL);
	CHECK(d.direct == (void *)direct_tramp, "a refused modify_direct keeps the trampoline");
#if !defined(__x86_64__)
	/* a trampoline the architecture cannot branch to (the branch register
	 * faults on AArch64, drops bit 0 on RISC-V) */
	CHECK_EQ(stitch_ftrace_modify_direct(&d, direct_tramp + 1, tr_size[0] - 1), -STITCH_EALIGN);
	CHECK(strstr(stitch_last_error(), "direct trampoline") != NULL, "message: %s", stitch_last_error());
	CHECK(d.direct == (void *)direct_tramp, "a refused modify_direct keeps the trampoline");
#endif

	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ(worker_wrong, 0);

	/* bad input */
	struct stitch_ftrace_ops both = { .func = cb, .direct = direct_tramp, .direct_size = 1 };
	struct stitch_ftrace_ops nosize = { .direct = direct_tramp };
	CHECK_EQ(stitch_ftrace_register(&both, "tf_d*"), -STITCH_EINVAL);
	CHECK_EQ(stitch_ftrace_register(&nosize, "tf_d*"), -STITCH_EINVAL);
	/* a trampoline that is not code: sites would jump into data */
	struct stitch_ftrace_ops data_tramp = { .direct = (void *)not_code, .direct_size = sizeof(not_code) };
	CHECK_EQ(stitch_ftrace_register(&data_tramp, "tf_d*"), -STITCH_EINVAL);
	CHECK(strstr(stitch_last_error(), "executable") != NULL, "message: %s", stitch_last_error());
	CHECK_EQ(stitch_ftrace_ops_site_count(&data_tramp), -STITCH_EINVAL);
	/* a trampoline whose range runs from executable memory into data, by
	 * more than 255 bytes (the length was once checked modulo 256) */
	long page = sysconf(_SC_PAGESIZE);
	uint8_t *two = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(two != MAP_FAILED && mprotect(two, (size_t)page, PROT_READ | PROT_EXEC) == 0, "mmap");
	for (size_t size = 0x108; two != MAP_FAILED && size <= 0x1010; size += 0x1010 - 0x108) {
		struct stitch_ftrace_ops straddle = { .direct = two + page - 16, .direct_size = size };
		CHECK_EQ(stitch_ftrace_register(&straddle, "tf_d*"), -STITCH_EINVAL);
		CHECK(strstr(stitch_last_error(), "executable") != NULL, "size %#zx: %s", size, stitch_last_error());
	}
	if (two != MAP_FAILED)
		munmap(two, 2 * (size_t)page);

	CHECK_EQ(stitch_ftrace_unregister(&d), 0);
	CHECK_EQ(stitch_ftrace_unregister(&t), 0);
	direct_and_graph_turns(&d, switches);
	/* the direct call's sites traced by a callback now (RISC-V retarget
	 * mode: their AUIPC moves back to the region's page, with the replay) */
	cb_calls = 0;
	CHECK(stitch_ftrace_register(&t, "tf_a* tf_c*") == 0, "register tracer: %s", stitch_last_error());
	CHECK_EQ(call_range(0, TF_COUNT), 0);
	CHECK_EQ(cb_calls, 512);
	CHECK_EQ(stitch_ftrace_unregister(&t), 0);
	direct_hits = 0;
	cb_calls = 0;
	CHECK_EQ(call_range(0, TF_COUNT), 0);
	CHECK_EQ(hits(), 0);
	CHECK_EQ(cb_calls, 0);
	return check_summary("test_ftrace_direct");
}
