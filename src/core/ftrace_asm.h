/* SPDX-License-Identifier: MIT */
/*
 * What the architectures' trampoline assembly needs from the tracing core:
 * the offsets of the structures it reads, and liburcu-bp's read side.
 * Top-level asm takes no operands, so the offsets are plain numbers here,
 * turned into text with STR() and checked against the structures below.
 * Included by src/arch/<arch>/ftrace.c only (it defines _LGPL_SOURCE).
 */
#ifndef STITCH_CORE_FTRACE_ASM_H
#define STITCH_CORE_FTRACE_ASM_H

#include <stddef.h>

#include "core/ftrace_internal.h"
#include "stitch/ftrace.h"

/*
 * The RCU read side of the trampolines' fast paths: liburcu-bp's, inlined
 * (what _urcu_bp_read_lock/_unlock in <urcu/static/urcu-bp.h> do), with
 * the offsets and constants taken from that header.  Without liburcu (the
 * core's fallback RCU) the fast paths are not assembled: FT_ASM_FAST is 0
 * and every call takes the dispatcher.
 */
#ifdef STITCH_HAVE_URCU
#define _LGPL_SOURCE
#include <urcu/urcu-bp.h>
#define FT_ASM_FAST 1
#define U_CTR 0 /* offsetof(struct urcu_bp_reader, ctr), checked below */
#define U_GP_CTR 0 /* offsetof(struct urcu_bp_gp, ctr) */
#define U_COUNT 1 /* URCU_BP_GP_COUNT */
_Static_assert(offsetof(struct urcu_bp_reader, ctr) == U_CTR && offsetof(struct urcu_bp_gp, ctr) == U_GP_CTR &&
		       URCU_BP_GP_COUNT == U_COUNT,
	       "the trampolines' urcu-bp offsets");
/* a 32-bit compare with 0 tests the nesting count: the low 32 bits of ctr */
_Static_assert(URCU_BP_GP_CTR_NEST_MASK == 0xffffffffUL && sizeof(unsigned long) == 8, "urcu-bp's nest mask");
/* the same as asm operands, from the header itself (x86-64's lean trampolines) */
#define U_CTR_OP offsetof(struct urcu_bp_reader, ctr)
#define U_GP_CTR_OP offsetof(struct urcu_bp_gp, ctr)
#define U_COUNT_OP URCU_BP_GP_COUNT
#else
#define FT_ASM_FAST 0
#define U_CTR 0
#define U_GP_CTR 0
#define U_COUNT 1
#define U_CTR_OP 0
#define U_GP_CTR_OP 0
#define U_COUNT_OP 1
#endif

#define FT_SEQ_OUT_N 1 /* FT_SEQ_OUT, as text */
_Static_assert(FT_SEQ_OUT == FT_SEQ_OUT_N, "the trampolines' seq outside callbacks");

#define STR_(x) #x
#define STR(x) STR_(x)
#define T_SEQ 0      /* struct ft_thread */
#define T_SHADOW 8
#define R_SINGLE 32  /* struct ft_rec */
#define R_SINGLE_RET 40
#define R_IP 56
#define O_FUNC 0     /* struct stitch_ftrace_ops */
#define O_RETF 48
#define S_DEPTH 0    /* struct ft_shadow_stack */
#define S_E 8
#define E_ORIG 0     /* struct ft_shadow */
#define E_KEY 8
#define E_REC 16
#define E_OPS 24
#define E_SIZE 32    /* every trampoline indexes the entries with a shift by 5 */

_Static_assert(offsetof(struct ft_thread, seq) == T_SEQ && offsetof(struct ft_thread, shadow) == T_SHADOW &&
		       offsetof(struct ft_rec, single) == R_SINGLE &&
		       offsetof(struct ft_rec, single_ret) == R_SINGLE_RET && offsetof(struct ft_rec, a.func) == R_IP &&
		       offsetof(struct stitch_ftrace_ops, func) == O_FUNC &&
		       offsetof(struct stitch_ftrace_ops, ret_func) == O_RETF &&
		       offsetof(struct ft_shadow_stack, depth) == S_DEPTH && offsetof(struct ft_shadow_stack, e) == S_E &&
		       offsetof(struct ft_shadow, orig) == E_ORIG && offsetof(struct ft_shadow, key) == E_KEY &&
		       offsetof(struct ft_shadow, rec) == E_REC && offsetof(struct ft_shadow, ops) == E_OPS &&
		       sizeof(struct ft_shadow) == E_SIZE,
	       "the trampolines' offsets");

#endif
