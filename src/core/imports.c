/* SPDX-License-Identifier: MIT */
/*
 * Redirecting a program's bound references to a function - the GOT slots
 * and data words the dynamic loader filled with its address - to another
 * definition.
 *
 * Why: libstitch interposes a few functions of other libraries by name
 * (ftrace_unwind.c: the unwinder's entry points, __cxa_begin_catch,
 * pthread_exit).  That works when libstitch comes before those libraries in
 * the lookup order: linked in, or preloaded.  Loaded by dlopen()
 * (stitch-trace attach), it comes after them, and the program's calls are
 * bound to the originals already; rewriting the words they are bound
 * through is the one way in that leaves the originals' code alone.
 *
 * What is rewritten, in every loaded module but the one holding `self`: a
 * word that a relocation of the kinds that bind a word to a symbol
 * (JUMP_SLOT, GLOB_DAT, the 64-bit absolute one) with addend 0 fills for a
 * symbol of that name, and which holds the original now - or, for a
 * JUMP_SLOT, the lazy binding's PLT stub, an address inside the module
 * itself, which would bind it to the original on first call.  A word
 * holding anything else was bound elsewhere (another interposer, a
 * definition of the module's own scope) and is left alone.
 *
 * Why a word can be rewritten while other threads call through it: it is
 * aligned and written with one atomic store (stitch_store_word), so a call
 * loads the original or the replacement, and both are definitions of the
 * function (the replacement ends in the original).  The walk runs inside
 * dl_iterate_phdr(), whose lock keeps dlclose() from unmapping a module
 * meanwhile; nothing in it calls into the dynamic loader (dladdr() or
 * dlsym() there would take the loader's other lock, in the opposite order
 * to dlopen()).  A module that dlopen() is relocating at the same moment
 * may bind its words after the store: the caller runs the redirect again
 * when the set of modules changes.
 */
#include <elf.h>
#include <link.h>
#include <string.h>

#include "core/internal.h"

/* The relocations that bind one word to a symbol's address. */
#if defined(__x86_64__)
#define R_JUMP_SLOT R_X86_64_JUMP_SLOT
#define R_GLOB_DAT R_X86_64_GLOB_DAT
#define R_ABS64 R_X86_64_64
#elif defined(__aarch64__)
#define R_JUMP_SLOT R_AARCH64_JUMP_SLOT
#define R_GLOB_DAT R_AARCH64_GLOB_DAT
#define R_ABS64 R_AARCH64_ABS64
#elif defined(__riscv) && __riscv_xlen == 64
#define R_JUMP_SLOT R_RISCV_JUMP_SLOT
#define R_GLOB_DAT R_RISCV_64 /* RISC-V's GOT entries are plain 64-bit words */
#define R_ABS64 R_RISCV_64
#else
#error "imports.c: unsupported architecture"
#endif

struct walk {
	struct stitch_import_redirect *r;
	size_t n;
	uintptr_t self;
	int err;
};

static bool in_module(const struct dl_phdr_info *info, uintptr_t addr)
{
	for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && addr >= lo && addr - lo < ph->p_memsz)
			return true;
	}
	return false;
}

/* A dynamic-section address: glibc relocates them in place, except where
 * the section is read-only (RISC-V, the vDSO): then they are offsets. */
static uintptr_t dyn_addr(const struct dl_phdr_info *info, uintptr_t p)
{
	return p < info->dlpi_addr ? info->dlpi_addr + p : p;
}

static void redirect_table(struct walk *w, const struct dl_phdr_info *info, const ElfW(Rela) *rel, size_t size,
			   const ElfW(Sym) *syms, const char *strs, size_t strsz)
{
	for (size_t k = 0; rel && k < size / sizeof(*rel); k++) {
		unsigned type = (unsigned)ELF64_R_TYPE(rel[k].r_info);
		size_t symi = ELF64_R_SYM(rel[k].r_info);
		if ((type != R_JUMP_SLOT && type != R_GLOB_DAT && type != R_ABS64) || symi == 0 || rel[k].r_addend)
			continue;
		if (syms[symi].st_name >= strsz)
			continue;
		const char *name = strs + syms[symi].st_name;
		for (size_t i = 0; i < w->n; i++) {
			if (strcmp(name, w->r[i].name) != 0)
				continue;
			void *real = *w->r[i].real;
			uintptr_t *word = (uintptr_t *)(info->dlpi_addr + rel[k].r_offset);
			uintptr_t now = __atomic_load_n(word, __ATOMIC_RELAXED);
			bool bound = now == (uintptr_t)w->r[i].to;
			if (!bound && real && (now == (uintptr_t)real || (type == R_JUMP_SLOT && in_module(info, now)))) {
				int e = stitch_store_word(word, (uintptr_t)w->r[i].to);
				if (e && !w->err)
					w->err = e;
				bound = !e;
			}
			w->r[i].bound += bound;
			w->r[i].missed += !bound;
			w->r[i].bound_in_probe += bound && w->r[i].probe && in_module(info, (uintptr_t)w->r[i].probe);
		}
	}
}

static int visit_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct walk *w = arg;
	(void)size;
	if (in_module(info, w->self))
		return 0;
	const ElfW(Dyn) *dyn = NULL;
	for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
			dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
	if (!dyn)
		return 0;
	const ElfW(Sym) *syms = NULL;
	const char *strs = NULL;
	size_t strsz = 0, relasz = 0, pltsz = 0;
	const ElfW(Rela) *rela = NULL, *jmprel = NULL;
	bool plt_is_rela = true;
	for (; dyn->d_tag != DT_NULL; dyn++) {
		uintptr_t v = dyn->d_un.d_ptr;
		switch (dyn->d_tag) {
		case DT_SYMTAB:
			syms = (const ElfW(Sym) *)dyn_addr(info, v);
			break;
		case DT_STRTAB:
			strs = (const char *)dyn_addr(info, v);
			break;
		case DT_STRSZ:
			strsz = dyn->d_un.d_val;
			break;
		case DT_RELA:
			rela = (const ElfW(Rela) *)dyn_addr(info, v);
			break;
		case DT_RELASZ:
			relasz = dyn->d_un.d_val;
			break;
		case DT_JMPREL:
			jmprel = (const ElfW(Rela) *)dyn_addr(info, v);
			break;
		case DT_PLTRELSZ:
			pltsz = dyn->d_un.d_val;
			break;
		case DT_PLTREL:
			plt_is_rela = dyn->d_un.d_val == DT_RELA;
			break;
		default:
			break;
		}
	}
	if (!syms || !strs)
		return 0;
	redirect_table(w, info, rela, relasz, syms, strs, strsz);
	if (plt_is_rela) /* the only kind on these architectures */
		redirect_table(w, info, jmprel, pltsz, syms, strs, strsz);
	return 0;
}

int stitch_redirect_imports(struct stitch_import_redirect *r, size_t n, const void *self)
{
	for (size_t i = 0; i < n; i++)
		r[i].bound = r[i].missed = r[i].bound_in_probe = 0;
	struct walk w = { .r = r, .n = n, .self = (uintptr_t)self, .err = 0 };
	dl_iterate_phdr(visit_module, &w);
	return w.err;
}

struct main_probe {
	uintptr_t addr;
	bool inside;
};

static int first_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct main_probe *m = arg;
	(void)size;
	m->inside = in_module(info, m->addr);
	return 1; /* the main program is listed first: stop there */
}

bool stitch_in_main_program(const void *addr)
{
	struct main_probe m = { (uintptr_t)addr, false };
	dl_iterate_phdr(first_module, &m);
	return m.inside;
}

int stitch_redirect_interposers(const struct stitch_interposer *ip, struct stitch_import_redirect *r, size_t n,
				const void *probe, const void *self)
{
	for (size_t i = 0; i < n; i++)
		r[i] = (struct stitch_import_redirect){ .name = ip[i].name, .to = ip[i].ours, .real = ip[i].next,
							.probe = probe };
	return stitch_redirect_imports(r, n, self);
}
