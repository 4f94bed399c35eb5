/* SPDX-License-Identifier: MIT */
/*
 * Static calls: registration per module and updates.
 *
 * Each module that defines static calls has a __stitch_static_calls
 * section of descriptor pointers, registered by the constructor that
 * <stitch/static_call.h> emits.  Registration checks every trampoline
 * against the bytes the macro emits (arch_static_call_register) and moves
 * it to the fastest form for its initial target.  An update checks the
 * target (executable, aligned), then lets the architecture rewrite the
 * trampoline (src/arch/<arch>/static_call.c, whose comment holds the
 * protocol); the descriptor's `func` changes only if that succeeded.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "core/internal.h"
#include "stitch/static_call.h"

struct sc_module {
	const void *dso;
	struct stitch_static_call **start, **stop;
	struct sc_module *next;
};

static struct sc_module *sc_modules; /* guarded by the update lock */

static const char *module_name(const void *dso)
{
	Dl_info info;
	if (dladdr(dso, &info) && info.dli_fname && *info.dli_fname)
		return info.dli_fname;
	return "(main program)";
}

/* Is the target executable code?  Reads nothing at the address. */
static int check_target(const struct stitch_static_call *sc, void *func)
{
	if (!func)
		return 0;
	int err = arch_static_call_check_target((uintptr_t)func);
	if (err)
		return err;
	struct stitch_patch p;
	memset(&p, 0, sizeof(p));
	p.addr = (uintptr_t)func;
	p.len = 1;
	if (stitch_text_check(&p, 1) != 0)
		return stitch_fail(STITCH_EINVAL, "static call %s: target %p is not in executable memory", sc->name,
				   func);
	return 0;
}

int stitch__static_call_module_register(const void *dso, struct stitch_static_call **start,
					struct stitch_static_call **stop)
{
	if (!dso || !start || stop < start)
		return -STITCH_EINVAL;
	stitch_update_lock();
	for (struct sc_module *m = sc_modules; m; m = m->next)
		if (m->dso == dso) {
			stitch_update_unlock();
			return 0; /* every translation unit's constructor calls us */
		}
	struct sc_module *m = calloc(1, sizeof(*m));
	int err = m ? stitch_ensure_init() : stitch_fail(STITCH_ENOMEM, "out of memory");
	for (struct stitch_static_call **p = start; !err && p < stop; p++)
		err = arch_static_call_register(*p);
	/* Move each trampoline to the fastest form for its target.  A failure
	 * here leaves that trampoline on its (correct) emitted form. */
	for (struct stitch_static_call **p = start; !err && p < stop; p++) {
		(*p)->module = m;
		void *func = __atomic_load_n(&(*p)->func, __ATOMIC_ACQUIRE);
		int uerr = check_target(*p, func);
		if (!uerr)
			uerr = arch_static_call_update(*p, func);
		if (uerr)
			fprintf(stderr, "stitch: static call %s of %s stays on its initial form: %s\n", (*p)->name,
				module_name(dso), stitch_last_error());
	}
	if (err) {
		for (struct stitch_static_call **p = start; p < stop; p++)
			(*p)->module = NULL;
		fprintf(stderr, "stitch: static calls of %s cannot be updated: %s\n", module_name(dso),
			stitch_last_error());
		free(m);
		stitch_update_unlock();
		return err;
	}
	m->dso = dso;
	m->start = start;
	m->stop = stop;
	m->next = sc_modules;
	sc_modules = m;
	stitch_update_unlock();
	return 0;
}

void stitch__static_call_module_unregister(const void *dso)
{
	stitch_update_lock();
	for (struct sc_module **pp = &sc_modules; *pp; pp = &(*pp)->next) {
		struct sc_module *m = *pp;
		if (m->dso != dso)
			continue;
		*pp = m->next;
		for (struct stitch_static_call **p = m->start; p < m->stop; p++)
			(*p)->module = NULL;
		free(m);
		break;
	}
	stitch_update_unlock();
}

/* Is sc one of the registered descriptors?  (Not just its own say-so.) */
static bool registered(const struct stitch_static_call *sc)
{
	for (struct sc_module *m = sc_modules; m; m = m->next)
		for (struct stitch_static_call **p = m->start; p < m->stop; p++)
			if (*p == sc)
				return sc->module == m;
	return false;
}

int stitch_static_call_update_desc(struct stitch_static_call *sc, void *func)
{
	stitch_clear_error();
	if (!sc)
		return stitch_fail(STITCH_EINVAL, "static call is NULL");
	int err = stitch_ensure_init();
	if (err)
		return err;
	stitch_update_lock();
	if (!registered(sc))
		err = stitch_fail(STITCH_ENOTFOUND,
				  "static call %p is not registered (its module's constructor has not run, it was "
				  "dlclose()d, or it is not a static call)",
				  (void *)sc);
	if (!err)
		err = check_target(sc, func);
	if (!err)
		err = arch_static_call_update(sc, func);
	if (!err)
		__atomic_store_n(&sc->func, func, __ATOMIC_RELEASE);
	stitch_update_unlock();
	return err;
}

void *stitch_static_call_query_desc(const struct stitch_static_call *sc)
{
	return sc ? __atomic_load_n(&sc->func, __ATOMIC_ACQUIRE) : NULL;
}
