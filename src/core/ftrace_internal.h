/* SPDX-License-Identifier: MIT */
/*
 * Function tracing, internal: what ftrace_sites.c (finding sites in loaded
 * ELF modules, placing trampoline regions) gives ftrace.c (records, ops,
 * filters, RCU, dispatch).
 */
#ifndef STITCH_CORE_FTRACE_INTERNAL_H
#define STITCH_CORE_FTRACE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* A function symbol of a module, at its run-time address. */
struct ft_sym {
	uintptr_t addr;
	size_t size;
	const char *name; /* points into the module's name blob */
};

/* What the ELF reader found in one loaded module. */
struct ft_elf {
	uintptr_t *records; /* run-time addresses from __patchable_function_entries */
	size_t nrecords;
	struct ft_sym *syms; /* STT_FUNC symbols, sorted by address */
	size_t nsyms;
	char *names; /* the names, NUL-separated */
};

/*
 * Read the module mapped at `base` from `path` (its file on disk): check
 * that the file's program headers are those of the mapping (`phdr`,
 * `phnum`), take the section addresses from the file and the record values
 * from memory (already relocated), and the symbols of .symtab (else
 * .dynsym).  A module without the section gives nrecords == 0.  Returns 0
 * or a STITCH_E* error with a message; `out` is then empty.
 */
int ft_elf_read(const char *path, uintptr_t base, const void *phdr, int phnum, struct ft_elf *out);
void ft_elf_free(struct ft_elf *e);
/* The function symbol containing addr, or NULL. */
const struct ft_sym *ft_elf_sym_at(const struct ft_elf *e, uintptr_t addr);

/*
 * Map `size` bytes readable and writable at an address from which every
 * byte of [lo, hi) is within `reach` (in both directions), found in the
 * gaps of /proc/self/maps.  Returns the address or 0 (with stitch_fail).
 */
uintptr_t ft_map_near(uintptr_t lo, uintptr_t hi, size_t size, uintptr_t reach);

#endif
