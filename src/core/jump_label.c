/* SPDX-License-Identifier: MIT */
/*
 * Static keys: site tables per module, and key updates as patch batches.
 *
 * Each module (the executable or a shared library) that uses keys registers
 * its __stitch_jump_table from a constructor that <stitch/static_key.h>
 * emits, and unregisters it from the matching destructor at dlclose().
 * Keys are hidden symbols, so all sites of a key are in the key's own
 * module: a module's table is decoded once into absolute addresses, sorted
 * by key, and each key points at its group of sites.
 *
 * Updating a key builds one batch with every site of the key and applies it
 * with the architecture's protocol: the number of syncs per update does not
 * depend on the number of sites.  The count changes only if the batch was
 * applied, so a failed update leaves key and code as they were.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "core/internal.h"
#include "stitch/static_key.h"

struct jl_site {
	struct stitch_jump_site where;
	struct stitch_static_key *key;
	bool branch; /* the site jumps when (key enabled) XOR branch */
};

struct jl_group {
	struct jl_site *sites;
	size_t count;
	struct jl_module *module;
};

struct jl_module {
	const void *dso;
	struct jl_site *sites;
	size_t nsites;
	struct jl_group *groups;
	size_t ngroups;
	int rejected;        /* 0, or the error that made us refuse the module's sites */
	char reason[256];    /* why, for every later update of its keys */
	struct jl_module *next;
};

static struct jl_module *modules; /* guarded by the update lock */

static int key_count(const struct stitch_static_key *key)
{
	return __atomic_load_n(&key->enabled, __ATOMIC_ACQUIRE);
}

int stitch_static_key_count(const struct stitch_static_key *key)
{
	return key ? key_count(key) : 0;
}

static int cmp_site(const void *a, const void *b)
{
	const struct jl_site *x = a, *y = b;
	if (x->key != y->key)
		return (uintptr_t)x->key < (uintptr_t)y->key ? -1 : 1;
	return x->where.code < y->where.code ? -1 : x->where.code > y->where.code;
}

static const char *module_name(const void *dso)
{
	Dl_info info;
	if (dladdr(dso, &info) && info.dli_fname && *info.dli_fname)
		return info.dli_fname;
	return "(main program)";
}

/*
 * Queue the changes that make every site of `sites` match `enabled`.  The
 * first time a site is seen (its module's registration) its length is
 * recorded; every later update must find that length again.
 */
static int queue_sites(struct stitch_batch *b, struct jl_site *sites, size_t n, bool enabled_for_all,
		       bool use_key_value)
{
	for (size_t i = 0; i < n; i++) {
		bool enabled = use_key_value ? key_count(sites[i].key) > 0 : enabled_for_all;
		struct stitch_patch p;
		int err = arch_jump_label_patch(&sites[i].where, enabled != sites[i].branch, &p);
		if (!err)
			err = stitch_batch_add(b, p.addr, p.old, p.new_bytes, p.len);
		if (err)
			return err;
		if (!sites[i].where.len)
			sites[i].where.len = p.len;
	}
	return 0;
}

static int decode_module(struct jl_module *m, struct stitch_jump_entry *start, struct stitch_jump_entry *stop)
{
	m->nsites = (size_t)(stop - start);
	m->sites = calloc(m->nsites, sizeof(*m->sites));
	if (!m->sites)
		return stitch_fail(STITCH_ENOMEM, "out of memory registering %zu static-key sites", m->nsites);
	for (size_t i = 0; i < m->nsites; i++) {
		struct stitch_jump_entry *e = &start[i];
		uintptr_t key = (uintptr_t)&e->key + (uintptr_t)e->key;
		m->sites[i].where.code = (uintptr_t)&e->code + (uintptr_t)(intptr_t)e->code;
		m->sites[i].where.target = (uintptr_t)&e->target + (uintptr_t)(intptr_t)e->target;
		m->sites[i].key = (struct stitch_static_key *)(key & ~(uintptr_t)1);
		m->sites[i].branch = key & 1;
	}
	qsort(m->sites, m->nsites, sizeof(*m->sites), cmp_site);
	size_t ngroups = 0;
	for (size_t i = 0; i < m->nsites; i++)
		if (i == 0 || m->sites[i].key != m->sites[i - 1].key)
			ngroups++;
	m->groups = calloc(ngroups ? ngroups : 1, sizeof(*m->groups));
	if (!m->groups)
		return stitch_fail(STITCH_ENOMEM, "out of memory registering static keys");
	for (size_t i = 0; i < m->nsites; i++) {
		if (i == 0 || m->sites[i].key != m->sites[i - 1].key)
			m->groups[m->ngroups++] = (struct jl_group){ &m->sites[i], 0, m };
		m->groups[m->ngroups - 1].count++;
	}
	return 0;
}

static void free_module(struct jl_module *m)
{
	free(m->sites);
	free(m->groups);
	free(m);
}

int stitch__jump_module_register(const void *dso, struct stitch_jump_entry *start, struct stitch_jump_entry *stop)
{
	if (!dso || !start || stop < start)
		return -STITCH_EINVAL;
	stitch_update_lock();
	for (struct jl_module *m = modules; m; m = m->next)
		if (m->dso == dso) {
			stitch_update_unlock();
			return 0; /* every translation unit's constructor calls us */
		}
	struct jl_module *m = calloc(1, sizeof(*m));
	int err = m ? decode_module(m, start, stop) : stitch_fail(STITCH_ENOMEM, "out of memory");
	if (err) {
		if (m)
			free_module(m);
		stitch_update_unlock();
		fprintf(stderr, "stitch: static keys of %s cannot be used: %s\n", module_name(dso),
			stitch_last_error());
		return err;
	}
	m->dso = dso;
	/*
	 * Check every site now, and bring it in line with its key's value (a
	 * key may have been changed by an earlier constructor of its module).
	 * A site we do not recognise makes the whole module's keys refuse
	 * updates, with the reason, rather than patch something unknown.
	 */
	struct stitch_batch b;
	stitch_batch_init(&b);
	b.operation = "static_key module load";
	err = queue_sites(&b, m->sites, m->nsites, false, true);
	bool needs_write = false;
	for (size_t i = 0; !err && i < b.count; i++)
		needs_write |= memcmp(b.patches[i].old, b.patches[i].new_bytes, b.patches[i].len) != 0;
	if (!err && needs_write) {
		err = stitch_ensure_init();
		if (!err)
			err = stitch_batch_apply_locked(&b);
	}
	stitch_batch_free(&b);
	if (err) {
		m->rejected = err;
		snprintf(m->reason, sizeof(m->reason), "static keys of %s were refused at load: %s",
			 module_name(dso), stitch_last_error());
		fprintf(stderr, "stitch: %s\n", m->reason);
	}
	for (size_t g = 0; g < m->ngroups; g++)
		m->groups[g].sites[0].key->sites = &m->groups[g];
	m->next = modules;
	modules = m;
	stitch_update_unlock();
	return err;
}

void stitch__jump_module_unregister(const void *dso)
{
	stitch_update_lock();
	for (struct jl_module **pp = &modules; *pp; pp = &(*pp)->next) {
		struct jl_module *m = *pp;
		if (m->dso != dso)
			continue;
		*pp = m->next;
		for (size_t g = 0; g < m->ngroups; g++)
			m->groups[g].sites[0].key->sites = NULL;
		free_module(m);
		break;
	}
	stitch_update_unlock();
}

/* key->sites is a group of a registered module whose sites are this key's:
 * not so for a copy of a key (its pointer names the original's sites, which
 * an update of the copy would rewrite behind the original's count).
 * Update lock held. */
static bool key_sites_valid(const struct stitch_static_key *key)
{
	const struct jl_group *g = key->sites;
	if (!g)
		return true;
	for (const struct jl_module *m = modules; m; m = m->next)
		if ((uintptr_t)g >= (uintptr_t)m->groups && (uintptr_t)g < (uintptr_t)(m->groups + m->ngroups))
			return g->sites[0].key == key;
	return false;
}

int stitch_static_key_site_count(const struct stitch_static_key *key)
{
	if (!key)
		return 0;
	stitch_update_lock();
	const struct jl_group *g = key_sites_valid(key) ? key->sites : NULL;
	int n = g ? (int)g->count : 0;
	stitch_update_unlock();
	return n;
}

/* Set the key's count to `count`, rewriting its sites if enabled-ness changes. */
static int key_set_locked(struct stitch_static_key *key, int count)
{
	int old = key_count(key);
	if ((old > 0) != (count > 0)) {
		const struct jl_group *g = key->sites;
		if (g && g->module->rejected)
			return stitch_fail(-g->module->rejected, "%s", g->module->reason);
		if (g) {
			int err = stitch_ensure_init();
			if (err)
				return err;
			struct stitch_batch b;
			stitch_batch_init(&b);
			b.operation = count > 0 ? "static_key enable" : "static_key disable";
			err = queue_sites(&b, g->sites, g->count, count > 0, false);
			if (!err)
				err = stitch_batch_apply_locked(&b);
			stitch_batch_free(&b);
			if (err)
				return err;
		}
	}
	__atomic_store_n(&key->enabled, count, __ATOMIC_RELEASE);
	return 0;
}

enum key_op { KEY_ENABLE, KEY_DISABLE, KEY_INC, KEY_DEC };

static int key_update(struct stitch_static_key *key, enum key_op op)
{
	stitch_clear_error();
	if (!key)
		return stitch_fail(STITCH_EINVAL, "static key is NULL");
	stitch_update_lock();
	int cur = key_count(key), next = cur, err = 0;
	if (!key_sites_valid(key)) {
		stitch_update_unlock();
		return stitch_fail(STITCH_EINVAL, "static key %p is not one the library registered (a copy of a "
				   "key? only the key its branches name can switch them)",
				   (void *)key);
	}
	switch (op) {
	case KEY_ENABLE: next = cur > 0 ? cur : 1; break;
	case KEY_DISABLE: next = 0; break;
	case KEY_INC:
		if (cur == INT32_MAX)
			err = stitch_fail(STITCH_EOVERFLOW, "static key %p: reference count would overflow", (void *)key);
		else
			next = cur + 1; /* not computed at INT32_MAX: signed overflow is undefined */
		break;
	case KEY_DEC:
		if (cur <= 0)
			err = stitch_fail(STITCH_EOVERFLOW, "static key %p: dec() without a matching inc()", (void *)key);
		next = cur - 1;
		break;
	}
	if (!err)
		err = key_set_locked(key, next);
	stitch_update_unlock();
	return err;
}

int stitch_static_key_enable_key(struct stitch_static_key *key) { return key_update(key, KEY_ENABLE); }
int stitch_static_key_disable_key(struct stitch_static_key *key) { return key_update(key, KEY_DISABLE); }
int stitch_static_key_inc_key(struct stitch_static_key *key) { return key_update(key, KEY_INC); }
int stitch_static_key_dec_key(struct stitch_static_key *key) { return key_update(key, KEY_DEC); }
