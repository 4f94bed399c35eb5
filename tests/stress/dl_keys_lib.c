/* SPDX-License-Identifier: MIT */
/* A dlopen()ed module with its own key and sites (see dl_keys.c). */
#include <stitch/static_key.h>

#include "common/repeat.h"
#include "key_history.h"

STITCH_DEFINE_STATIC_KEY_FALSE(lib_key);

#define NOINLINE __attribute__((noinline))
#define SITE(k, i) static NOINLINE unsigned lib_site_##i(void) { return stitch_static_branch_unlikely(&k) ? SITE_ON : SITE_OFF; }
#define PTR(k, i) lib_site_##i,
REPEAT_16(SITE, lib_key, 0)
static unsigned (*const lib_sites[])(void) = { REPEAT_16(PTR, x, 0) };

/* The module's interface, looked up with dlsym(). */
struct stitch_static_key *dl_lib_key(void);
unsigned (*const *dl_lib_sites(int *count))(void);

struct stitch_static_key *dl_lib_key(void)
{
	return &lib_key.key;
}

unsigned (*const *dl_lib_sites(int *count))(void)
{
	*count = (int)(sizeof(lib_sites) / sizeof(lib_sites[0]));
	return lib_sites;
}
