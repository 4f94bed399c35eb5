/* SPDX-License-Identifier: MIT */
/*
 * Patch log: record every patch operation as a stitch-check model
 * (docs/patch-log.md), so the bytes the library really writes, with its
 * syncs and quiescence waits, are verified by tools/check.
 *
 * Enabled by STITCH_PATCH_LOG=DIR (read at the first operation): each
 * operation becomes DIR/<pid>-<seq>.model.  Without it every call is a
 * no-op costing one branch.
 *
 * Call order for one operation, with the library's update lock held
 * (the log has no lock of its own):
 *   stitch_patch_log_begin("static_key enable");
 *   stitch_patch_log_site(addr, bytes, len);    each site, bytes BEFORE the operation
 *   stitch_patch_log_store(addr, bytes, len);   each store, BEFORE performing it, in order
 *   stitch_patch_log_sync();                    each membarrier / icache sync, in order
 *   stitch_patch_log_quiesce(r, n, fixup, arg); each wait for threads to leave patched code
 *   stitch_patch_log_stop(fixup, arg);          stopping the world (fixup: where a parked
 *                                               thread is moved, NULL if nowhere)
 *   stitch_patch_log_resume();                  letting it run again
 *   stitch_patch_log_end(result);               0 or a negative STITCH_E* code
 * An operation begun while another is being recorded is part of it (its
 * end only closes it): an arch protocol made of several batches and
 * quiescences brackets them with its own begin/end and is one model.
 * An operation that stored nothing writes no model.
 * A store outside every logged site is still recorded: the log reads the
 * bytes there when the store is announced, so call it before the write.
 */
#ifndef STITCH_CORE_PATCH_LOG_H
#define STITCH_CORE_PATCH_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stitch_range; /* core/internal.h */

void stitch_patch_log_begin(const char *operation);
/* Between begin and end, when STITCH_PATCH_LOG is set: worth preparing what to log. */
bool stitch_patch_log_active(void);
void stitch_patch_log_site(uintptr_t addr, const uint8_t *bytes, size_t len);
void stitch_patch_log_store(uintptr_t addr, const uint8_t *bytes, size_t len);
void stitch_patch_log_sync(void);
/* a store to data that code reads (a destination slot): logged as a `data` region */
void stitch_patch_log_store_data(uintptr_t addr, const uint8_t *bytes, size_t len);
/* Code or data the thread of the site at `site` runs through or loads
 * (a table's stub and its slot), as it is now; it goes into that site's
 * models.  The site must have been logged. */
void stitch_patch_log_context(uintptr_t site, uintptr_t addr, size_t len, bool data);
/* A thread entering the site at `site` may also end up at `to`, without
 * the site's old or new call (a retarget's J +8: one call untraced). */
void stitch_patch_log_skip(uintptr_t site, uintptr_t to);
/* After a quiescence of `ranges` (stitch_quiesce()); fixup and arg as its
 * (pure, probed like stitch_patch_log_stop's): each PC it moves becomes
 * `rewind FROM TO on quiesce` of this step only. */
void stitch_patch_log_quiesce(const struct stitch_range *ranges, size_t n, bool (*fixup)(uintptr_t *pc, void *arg),
			      void *arg);
/* fixup and arg as stitch_stop_world()'s (core/internal.h); fixup must
 * be a pure function of the PC, as the ones there are: it is probed at
 * every instruction boundary of every site logged so far, and each PC it
 * moves becomes a `rewind FROM TO` rule of the model. */
void stitch_patch_log_stop(bool (*fixup)(uintptr_t *pc, void *arg), void *arg);
void stitch_patch_log_resume(void);
void stitch_patch_log_end(int result);

#endif
