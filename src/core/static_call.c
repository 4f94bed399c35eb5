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
 *
 * Inline call sites (x86-64): a module linked with -Wl,--emit-relocs keeps
 * its relocations in the file.  At registration we read the module's ELF
 * file (/proc/self/exe for the program), and every PC-relative relocation
 * against a trampoline symbol (stitch__sct_<name>) inside an executable
 * section whose bytes are a direct `call`/`jmp` of that trampoline becomes
 * an inline site, rewritten with the trampoline in every update (one
 * batch, so one protocol run for all).  The compiler emits these calls
 * itself (stitch_static_call(name)(args) is a plain call of a hidden
 * function), so finding them needs the relocations objtool reads in the
 * kernel's build; without --emit-relocs there are none and every call
 * goes through the trampoline.  STITCH_STATIC_CALL_INLINE=0 disables it.
 */
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/arch.h"
#include "core/internal.h"
#include "stitch/static_call.h"

struct sc_sites {
	struct stitch_sc_site *v;
	size_t n, cap;
};

struct sc_module {
	const void *dso;
	struct stitch_static_call **start, **stop;
	struct sc_sites *sites; /* parallel to [start, stop) */
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
	uintptr_t f = (uintptr_t)func, t = (uintptr_t)sc->tramp;
	if (f == t)
		return stitch_fail(STITCH_EINVAL, "static call %s: its own trampoline as the target would make every "
				   "call loop forever", sc->name);
	if (f > t && f - t < arch_static_call_tramp_size(sc))
		return stitch_fail(STITCH_EINVAL, "static call %s: target %p is inside its own trampoline (%p, %zu "
				   "bytes): a call would loop or run the middle of an instruction",
				   sc->name, func, sc->tramp, arch_static_call_tramp_size(sc));
	int err = arch_check_branch_target((uintptr_t)func, "static call target");
	if (err)
		return err;
	err = stitch_text_check_code((uintptr_t)func, 1);
	if (err && err != -STITCH_EPROTECT)
		return err; /* could not tell (e.g. out of memory reading the mappings) */
	if (err)
		return stitch_fail(STITCH_EINVAL, "static call %s: target %p is not in executable memory", sc->name,
				   func);
	return 0;
}

/* ---- inline sites from the module's relocations --------------------------- */

#define MAX_TEXT 16
struct obj_find {
	uintptr_t addr;
	bool found;
	const char *name;
	uintptr_t bias;
	struct stitch_range text[MAX_TEXT]; /* executable segments */
	size_t ntext;
};

static int find_obj(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	struct obj_find *f = data;
	bool mine = false;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
		if (f->addr >= lo && f->addr < hi)
			mine = true;
	}
	if (!mine)
		return 0;
	f->found = true;
	f->name = info->dlpi_name;
	f->bias = info->dlpi_addr;
	for (int i = 0; i < info->dlpi_phnum && f->ntext < MAX_TEXT; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X))
			f->text[f->ntext++] = (struct stitch_range){ info->dlpi_addr + ph->p_vaddr,
								     info->dlpi_addr + ph->p_vaddr + ph->p_filesz };
	}
	return 1;
}

static bool in_text(const struct obj_find *f, uintptr_t a, size_t len)
{
	for (size_t i = 0; i < f->ntext; i++)
		if (a >= f->text[i].start && a + len <= f->text[i].end)
			return true;
	return false;
}

static int add_site(struct sc_sites *s, uintptr_t addr, uintptr_t target, uint32_t kind)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].addr == addr)
			return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 8;
		struct stitch_sc_site *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return stitch_fail(STITCH_ENOMEM, "out of memory recording static-call sites");
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = (struct stitch_sc_site){ addr, target, kind };
	return 0;
}

/* Find the inline sites of the module's static calls; 0 if none or no relocations. */
static int scan_sites(struct stitch_static_call **start, size_t n, struct sc_sites *sites)
{
	const char *env = getenv("STITCH_STATIC_CALL_INLINE");
	if (n == 0 || (env && strcmp(env, "0") == 0))
		return 0;
	struct obj_find f;
	memset(&f, 0, sizeof(f));
	f.addr = (uintptr_t)start[0]->tramp;
	dl_iterate_phdr(find_obj, &f);
	if (!f.found)
		return 0;
	const char *path = f.name && *f.name ? f.name : "/proc/self/exe";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct stat st;
	void *map = MAP_FAILED;
	if (fstat(fd, &st) == 0 && (size_t)st.st_size >= sizeof(ElfW(Ehdr)))
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return 0;
	size_t size = (size_t)st.st_size;
	const uint8_t *base = map;
	const ElfW(Ehdr) *eh = map;
	int err = 0;
	int *symmap = NULL;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_shentsize != sizeof(ElfW(Shdr)) || eh->e_shoff > size ||
	    (size - eh->e_shoff) / sizeof(ElfW(Shdr)) < eh->e_shnum)
		goto out;
	const ElfW(Shdr) *sh = (const ElfW(Shdr) *)(base + eh->e_shoff);
	const ElfW(Shdr) *symtab = NULL;
	for (unsigned i = 0; i < eh->e_shnum; i++)
		if (sh[i].sh_type == SHT_SYMTAB)
			symtab = &sh[i];
	if (!symtab || symtab->sh_link >= eh->e_shnum || symtab->sh_offset > size ||
	    symtab->sh_size > size - symtab->sh_offset)
		goto out;
	const ElfW(Shdr) *strsh = &sh[symtab->sh_link];
	if (strsh->sh_offset > size || strsh->sh_size > size - strsh->sh_offset)
		goto out;
	const ElfW(Sym) *syms = (const ElfW(Sym) *)(base + symtab->sh_offset);
	const char *strs = (const char *)(base + strsh->sh_offset);
	size_t nsyms = symtab->sh_size / sizeof(ElfW(Sym)), found = 0;
	symmap = malloc(nsyms * sizeof(*symmap));
	if (!symmap)
		goto out;
	static const char prefix[] = "stitch__sct_";
	for (size_t i = 0; i < nsyms; i++) {
		symmap[i] = -1;
		if (syms[i].st_name >= strsh->sh_size ||
		    strnlen(strs + syms[i].st_name, strsh->sh_size - syms[i].st_name) == strsh->sh_size - syms[i].st_name)
			continue;
		const char *name = strs + syms[i].st_name;
		if (strncmp(name, prefix, sizeof(prefix) - 1) != 0)
			continue;
		for (size_t k = 0; k < n; k++)
			if (strcmp(name + sizeof(prefix) - 1, start[k]->name) == 0 &&
			    f.bias + syms[i].st_value == (uintptr_t)start[k]->tramp) {
				symmap[i] = (int)k;
				found++;
			}
	}
	for (unsigned s = 0; found && s < eh->e_shnum && !err; s++) {
		if (sh[s].sh_type != SHT_RELA || sh[s].sh_info >= eh->e_shnum || sh[s].sh_link != symtab - sh ||
		    !(sh[sh[s].sh_info].sh_flags & SHF_EXECINSTR) || sh[s].sh_offset > size ||
		    sh[s].sh_size > size - sh[s].sh_offset)
			continue;
		const ElfW(Rela) *r = (const ElfW(Rela) *)(base + sh[s].sh_offset);
		size_t nr = sh[s].sh_size / sizeof(*r);
		for (size_t j = 0; j < nr && !err; j++) {
			size_t sym = ELF64_R_SYM(r[j].r_info);
			uintptr_t site;
			if (sym >= nsyms || symmap[sym] < 0 ||
			    !arch_static_call_reloc_site((uint32_t)ELF64_R_TYPE(r[j].r_info), r[j].r_addend,
							 f.bias + r[j].r_offset, &site) ||
			    !in_text(&f, site, STITCH_MAX_INSN))
				continue;
			struct stitch_static_call *sc = start[symmap[sym]];
			uint32_t kind;
			if (arch_static_call_site_check(sc, site, &kind) == 0)
				err = add_site(&sites[symmap[sym]], site, (uintptr_t)sc->tramp, kind);
			else
				stitch_clear_error(); /* not a call of the trampoline (e.g. its address taken) */
		}
	}
out:
	free(symmap);
	munmap(map, size);
	return err;
}

static void free_sites(struct sc_sites *sites, size_t n)
{
	for (size_t i = 0; sites && i < n; i++)
		free(sites[i].v);
	free(sites);
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
	size_t n = (size_t)(stop - start);
	struct sc_module *m = calloc(1, sizeof(*m));
	struct sc_sites *sites = calloc(n ? n : 1, sizeof(*sites));
	int err = m && sites ? stitch_ensure_init() : stitch_fail(STITCH_ENOMEM, "out of memory");
	for (struct stitch_static_call **p = start; !err && p < stop; p++)
		err = arch_static_call_register(*p);
	if (!err && scan_sites(start, n, sites) != 0) {
		fprintf(stderr, "stitch: static calls of %s: inline sites ignored: %s\n", module_name(dso),
			stitch_last_error());
		for (size_t i = 0; i < n; i++)
			sites[i].n = 0;
	}
	/* Move each trampoline to the fastest form for its target.  A failure
	 * here leaves that trampoline on its (correct) emitted form. */
	for (struct stitch_static_call **p = start; !err && p < stop; p++) {
		(*p)->module = m;
		void *func = __atomic_load_n(&(*p)->func, __ATOMIC_ACQUIRE);
		int uerr = check_target(*p, func);
		if (!uerr)
			uerr = arch_static_call_update(*p, func, sites[p - start].v, sites[p - start].n);
		if (uerr)
			fprintf(stderr, "stitch: static call %s of %s stays on its initial form: %s\n", (*p)->name,
				module_name(dso), stitch_last_error());
	}
	if (err) {
		for (struct stitch_static_call **p = start; p < stop; p++)
			(*p)->module = NULL;
		fprintf(stderr, "stitch: static calls of %s cannot be updated: %s\n", module_name(dso),
			stitch_last_error());
		free_sites(sites, n);
		free(m);
		stitch_update_unlock();
		return err;
	}
	m->dso = dso;
	m->start = start;
	m->stop = stop;
	m->sites = sites;
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
		free_sites(m->sites, (size_t)(m->stop - m->start));
		free(m);
		break;
	}
	stitch_update_unlock();
}

/* sc's inline sites if it is one of the registered descriptors (not just
 * by its own say-so), else NULL. */
static struct sc_sites *registered(const struct stitch_static_call *sc)
{
	for (struct sc_module *m = sc_modules; m; m = m->next)
		for (struct stitch_static_call **p = m->start; p < m->stop; p++)
			if (*p == sc)
				return sc->module == m ? &m->sites[p - m->start] : NULL;
	return NULL;
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
	struct sc_sites *sites = registered(sc);
	if (!sites)
		err = stitch_fail(STITCH_ENOTFOUND,
				  "static call %p is not registered (its module's constructor has not run, it was "
				  "dlclose()d, or it is not a static call)",
				  (void *)sc);
	if (!err)
		err = check_target(sc, func);
	if (!err)
		err = arch_static_call_update(sc, func, sites->v, sites->n);
	if (!err)
		__atomic_store_n(&sc->func, func, __ATOMIC_RELEASE);
	stitch_update_unlock();
	return err;
}

void *stitch_static_call_query_desc(const struct stitch_static_call *sc)
{
	return sc ? __atomic_load_n(&sc->func, __ATOMIC_ACQUIRE) : NULL;
}

int stitch_static_call_site_count(const struct stitch_static_call *sc)
{
	stitch_update_lock();
	struct sc_sites *sites = sc ? registered(sc) : NULL;
	int n = sites ? (int)sites->n : 0;
	stitch_update_unlock();
	return n;
}
