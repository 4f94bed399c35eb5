/* SPDX-License-Identifier: MIT */
/*
 * Function tracing: finding the sites of a loaded module, and placing its
 * trampoline region within reach of its text.
 *
 * The records: -fpatchable-function-entry puts the address of every
 * function's patch area in __patchable_function_entries, an allocated
 * section (SHF_ALLOC), so the dynamic loader has relocated it in memory
 * (R_*_RELATIVE in PIE and shared objects).  The linker keeps no symbol
 * for it that another module could look up, and section headers are not
 * mapped, so we read the headers from the module's file, mapped read-only,
 * and the values from memory.  The file must be the one that is mapped:
 * its program headers are compared with the loaded ones.
 *
 * Names: .symtab when the file has one (static functions included), else
 * .dynsym.  No libelf: the cross sysroots have none, and the reader below
 * is a few bounds-checked loops over fixed-size ELF64 structures.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ftrace_internal.h"
#include "core/internal.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

void ft_elf_free(struct ft_elf *e)
{
	free(e->records);
	free(e->syms);
	free(e->names);
	memset(e, 0, sizeof(*e));
}

static int cmp_sym(const void *a, const void *b)
{
	const struct ft_sym *x = a, *y = b;
	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return strcmp(x->name, y->name);
}

const struct ft_sym *ft_elf_sym_at(const struct ft_elf *e, uintptr_t addr)
{
	size_t lo = 0, hi = e->nsyms;
	while (lo < hi) { /* first symbol above addr */
		size_t mid = lo + (hi - lo) / 2;
		if (e->syms[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i-- > 0;) {
		const struct ft_sym *s = &e->syms[i];
		if (addr == s->addr || addr < s->addr + s->size)
			return s;
		if (s->addr != e->syms[lo - 1].addr)
			break;
	}
	return NULL;
}

struct elf_file {
	const uint8_t *data;
	size_t size;
	const Elf64_Ehdr *eh;
	const Elf64_Shdr *sh;
};

static bool in_file(const struct elf_file *f, uint64_t off, uint64_t len)
{
	return off <= f->size && len <= f->size - off;
}

static const char *sec_name(const struct elf_file *f, const Elf64_Shdr *s)
{
	const Elf64_Shdr *strs = &f->sh[f->eh->e_shstrndx];
	if (s->sh_name >= strs->sh_size || !in_file(f, strs->sh_offset, strs->sh_size))
		return "";
	const char *n = (const char *)f->data + strs->sh_offset + s->sh_name;
	return memchr(n, 0, strs->sh_size - s->sh_name) ? n : "";
}

static int read_symbols(const struct elf_file *f, uintptr_t base, struct ft_elf *out, const char *path)
{
	const Elf64_Shdr *symtab = NULL;
	for (int pass = 0; pass < 2 && !symtab; pass++)
		for (unsigned i = 0; i < f->eh->e_shnum; i++)
			if (f->sh[i].sh_type == (pass ? SHT_DYNSYM : SHT_SYMTAB))
				symtab = &f->sh[i];
	if (!symtab)
		return 0;
	if (symtab->sh_link >= f->eh->e_shnum || symtab->sh_entsize != sizeof(Elf64_Sym) ||
	    !in_file(f, symtab->sh_offset, symtab->sh_size))
		return stitch_fail(STITCH_EUNKNOWN, "%s: malformed symbol table", path);
	const Elf64_Shdr *strtab = &f->sh[symtab->sh_link];
	if (!in_file(f, strtab->sh_offset, strtab->sh_size))
		return stitch_fail(STITCH_EUNKNOWN, "%s: malformed string table", path);
	const Elf64_Sym *sym = (const Elf64_Sym *)(f->data + symtab->sh_offset);
	const char *str = (const char *)f->data + strtab->sh_offset;
	size_t n = symtab->sh_size / sizeof(Elf64_Sym), count = 0, bytes = 0;
	for (int pass = 0; pass < 2; pass++) {
		size_t k = 0, at = 0;
		for (size_t i = 0; i < n; i++) {
			const Elf64_Sym *s = &sym[i];
			if (ELF64_ST_TYPE(s->st_info) != STT_FUNC || s->st_shndx == SHN_UNDEF || s->st_value == 0 ||
			    s->st_name >= strtab->sh_size)
				continue;
			const char *name = str + s->st_name;
			size_t len = strnlen(name, strtab->sh_size - s->st_name);
			if (pass == 0) {
				count++;
				bytes += len + 1;
				continue;
			}
			memcpy(out->names + at, name, len);
			out->names[at + len] = 0;
			out->syms[k++] = (struct ft_sym){ base + s->st_value, s->st_size, out->names + at };
			at += len + 1;
		}
		if (pass == 0) {
			out->syms = calloc(count ? count : 1, sizeof(*out->syms));
			out->names = malloc(bytes ? bytes : 1);
			if (!out->syms || !out->names)
				return stitch_fail(STITCH_ENOMEM, "%s: out of memory reading symbols", path);
			out->nsyms = count;
		}
	}
	qsort(out->syms, out->nsyms, sizeof(*out->syms), cmp_sym);
	return 0;
}

/* Whether [addr, addr+len) lies in an executable segment of the mapping. */
static bool in_text(const Elf64_Phdr *ph, int phnum, uintptr_t base, uintptr_t addr, size_t len)
{
	for (int i = 0; i < phnum; i++)
		if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_X) && addr >= base + ph[i].p_vaddr &&
		    addr + len <= base + ph[i].p_vaddr + ph[i].p_memsz)
			return true;
	return false;
}

static int read_records(const struct elf_file *f, uintptr_t base, const Elf64_Phdr *ph, int phnum,
			struct ft_elf *out, const char *path)
{
	for (unsigned i = 0; i < f->eh->e_shnum; i++) {
		const Elf64_Shdr *s = &f->sh[i];
		const char *name = sec_name(f, s);
		/* __mcount_loc: gcc -pg -mfentry -mnop-mcount -mrecord-mcount (non-PIE only);
		 * same format, but gcc leaves the section byte-aligned */
		if (strcmp(name, "__patchable_function_entries") != 0 && strcmp(name, "__mcount_loc") != 0)
			continue;
		if (!(s->sh_flags & SHF_ALLOC) || s->sh_size % 8 != 0)
			return stitch_fail(STITCH_EUNKNOWN, "%s: unexpected %s section", path, name);
		size_t n = s->sh_size / 8;
		uintptr_t *v = realloc(out->records, (out->nrecords + n) * sizeof(*v) + 1);
		if (!v)
			return stitch_fail(STITCH_ENOMEM, "%s: out of memory reading %zu sites", path, n);
		out->records = v;
		const uint8_t *mem = (const uint8_t *)(base + s->sh_addr);
		for (size_t k = 0; k < n; k++) {
			uint64_t val;
			memcpy(&val, mem + 8 * k, 8);
			uintptr_t r = (uintptr_t)val;
			/* Records of functions the linker discarded are 0 (or base). */
			if (in_text(ph, phnum, base, r, 1))
				out->records[out->nrecords++] = r;
		}
	}
	return 0;
}

int ft_elf_read(const char *path, uintptr_t base, const void *phdr, int phnum, struct ft_elf *out)
{
	memset(out, 0, sizeof(*out));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return stitch_fail_errno(STITCH_ESYS, "cannot open %s to find its patchable functions", path);
	struct stat st;
	if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
		close(fd);
		return stitch_fail(STITCH_EUNKNOWN, "%s: not an ELF file", path);
	}
	struct elf_file f = { .size = (size_t)st.st_size };
	void *map = mmap(NULL, f.size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return stitch_fail_errno(STITCH_ESYS, "mmap %s", path);
	f.data = map;
	f.eh = map;
	int err = 0;
	if (memcmp(f.eh->e_ident, ELFMAG, SELFMAG) != 0 || f.eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    f.eh->e_shentsize != sizeof(Elf64_Shdr) || f.eh->e_phentsize != sizeof(Elf64_Phdr) ||
	    !in_file(&f, f.eh->e_shoff, (uint64_t)f.eh->e_shnum * sizeof(Elf64_Shdr)) ||
	    !in_file(&f, f.eh->e_phoff, (uint64_t)f.eh->e_phnum * sizeof(Elf64_Phdr)) ||
	    f.eh->e_shstrndx >= f.eh->e_shnum)
		err = stitch_fail(STITCH_EUNKNOWN, "%s: not an ELF64 file with section headers", path);
	else if (f.eh->e_phnum != phnum || memcmp(f.data + f.eh->e_phoff, phdr, (size_t)phnum * sizeof(Elf64_Phdr)))
		err = stitch_fail(STITCH_EMISMATCH, "%s: the file on disk is not the one that is loaded", path);
	if (!err) {
		f.sh = (const Elf64_Shdr *)(f.data + f.eh->e_shoff);
		err = read_records(&f, base, phdr, phnum, out, path);
	}
	if (!err && out->nrecords)
		err = read_symbols(&f, base, out, path);
	munmap(map, f.size);
	if (err)
		ft_elf_free(out);
	return err;
}

/* ---- placing trampoline regions ---------------------------------------------- */

uintptr_t ft_map_near(uintptr_t lo, uintptr_t hi, size_t size, uintptr_t reach)
{
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t page = pg > 0 ? (uintptr_t)pg : 4096;
	size = (size + page - 1) & ~(page - 1);
	/* Allowed start addresses: every byte of [lo, hi) reaches every byte of the region. */
	uintptr_t min = hi > reach ? hi - reach : page;
	uintptr_t max = lo + reach > size ? lo + reach - size : 0;
	min = (min + page - 1) & ~(page - 1);
	if (min < 0x10000)
		min = 0x10000;
	FILE *maps = fopen("/proc/self/maps", "re");
	if (!maps) {
		stitch_fail_errno(STITCH_ESYS, "open /proc/self/maps");
		return 0;
	}
	/* Try the gaps nearest to the text first: below it downwards, above it upwards. */
	uintptr_t best[64];
	size_t nbest = 0;
	uintptr_t prev_end = 0;
	char line[512];
	for (;;) {
		unsigned long s = 0, e = 0;
		bool more = fgets(line, sizeof(line), maps) != NULL;
		if (more && sscanf(line, "%lx-%lx", &s, &e) != 2)
			continue;
		if (!more)
			s = max + size + page; /* the space above the last mapping */
		/* gap [prev_end + page, s - page): keep a guard page on each side */
		uintptr_t gs = prev_end + page, ge = s > page ? s - page : 0;
		if (ge > gs && ge - gs >= size) {
			uintptr_t a = ge - size; /* highest start in the gap */
			if (a > max)
				a = max & ~(page - 1);
			if (gs <= lo && a >= gs && a >= min && a + size <= ge && nbest < 64)
				best[nbest++] = a; /* below the text: as high as possible */
			uintptr_t b2 = gs > min ? gs : min; /* lowest start in the gap */
			if (b2 + size <= ge && b2 <= max && b2 >= hi && nbest < 64)
				best[nbest++] = b2;
		}
		if (!more)
			break;
		if (e > prev_end)
			prev_end = e;
	}
	fclose(maps);
	/* nearest first */
	for (size_t i = 1; i < nbest; i++)
		for (size_t j = i; j > 0; j--) {
			uintptr_t dj = best[j] > lo ? best[j] - lo : lo - best[j];
			uintptr_t dk = best[j - 1] > lo ? best[j - 1] - lo : lo - best[j - 1];
			if (dj >= dk)
				break;
			uintptr_t t = best[j];
			best[j] = best[j - 1];
			best[j - 1] = t;
		}
	for (size_t i = 0; i < nbest; i++) {
		void *p = mmap((void *)best[i], size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			       -1, 0);
		if (p == MAP_FAILED)
			continue;
		if ((uintptr_t)p == best[i])
			return (uintptr_t)p;
		munmap(p, size); /* a kernel that ignores MAP_FIXED_NOREPLACE placed it elsewhere */
	}
	stitch_fail(STITCH_ERANGE, "no free address space within %#lx bytes of text %#lx-%#lx for %zu bytes of trampolines",
		    (unsigned long)reach, (unsigned long)lo, (unsigned long)hi, size);
	return 0;
}
