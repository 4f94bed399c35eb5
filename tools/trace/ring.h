/* SPDX-License-Identifier: MIT */
/*
 * Per-thread event ring: one producer (the traced thread, in its callback),
 * one consumer (the agent's writer thread).  No lock, no allocation after
 * the ring exists; the ring itself is mmap()ed at the thread's first event,
 * which is async-signal-safe, so a first event inside a signal handler is
 * fine.
 *
 *   producer                          consumer
 *   load tail (acquire)  <----------  store tail (release) after copying
 *   write slots
 *   store head (release) ---------->  load head (acquire) before copying
 *
 * head and tail count events forever (64 bits do not wrap); the slot of
 * event i is i & mask.  A full ring drops the event and counts it in
 * lost_pending; the next event that fits is preceded by an ST_EV_LOST
 * event carrying the count, so the reader sees where the gap is.
 */
#ifndef STITCH_TRACE_RING_H
#define STITCH_TRACE_RING_H

#include <stdatomic.h>
#include <stdint.h>

#include "format.h"

struct ring {
	_Atomic uint64_t head; /* written by the producer only */
	char pad0[56];
	_Atomic uint64_t tail; /* written by the consumer only */
	char pad1[56];
	/* producer-private */
	uint64_t tail_seen;    /* tail as last read: the consumer's line is read only when it says full */
	uint64_t lost_pending;
	uint32_t depth;        /* calls entered under depth_ops whose on_return is pending */
	const void *depth_ops; /* the graph ops depth counts for (agent.c, graph_ops_new) */
	/* read by the consumer too */
	_Atomic uint64_t lost_total;
	_Atomic uint64_t noret_total;
	uint64_t mask;         /* capacity - 1 */
	uint64_t map_size;
	uint32_t tid;
	char name[16];         /* the thread's name when the ring was made */
	_Atomic int dead;      /* set by the consumer once the thread is gone and drained */
	int named;             /* consumer-private: a THREAD record was written */
	struct ring *next;     /* the list of all rings; pushed once, never unlinked */
	struct st_event ev[];
};

/* Room for one more event (and a pending LOST one)? */
static inline int ring_has_room(struct ring *r)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint64_t need = r->lost_pending ? 2 : 1;
	if (head - r->tail_seen + need <= r->mask + 1)
		return 1;
	/* tail only grows: a stale copy only underestimates the room (and the
	 * acquire that read it still orders the consumer's reads of the slots
	 * up to it before our writes) */
	r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
	return head - r->tail_seen + need <= r->mask + 1;
}

/* Producer: append one event; returns 0, or -1 if it had to be dropped. */
static inline int ring_put(struct ring *r, uint32_t kind, uint64_t ip, uint64_t ts, uint32_t gen)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	if (!ring_has_room(r)) {
		r->lost_pending++;
		atomic_store_explicit(&r->lost_total, atomic_load_explicit(&r->lost_total, memory_order_relaxed) + 1,
				      memory_order_relaxed);
		return -1;
	}
	if (r->lost_pending) {
		r->ev[head & r->mask] = (struct st_event){ .ts_ns = ts, .ip = r->lost_pending, .kind = ST_EV_LOST, .gen = gen };
		head++;
		r->lost_pending = 0;
	}
	r->ev[head & r->mask] = (struct st_event){ .ts_ns = ts, .ip = ip, .kind = kind, .gen = gen };
	atomic_store_explicit(&r->head, head + 1, memory_order_release);
	return 0;
}

#endif
