// SPDX-License-Identifier: MIT
// The other translation unit of test_cxx (test_cxx_inline.h).
#include "test_cxx_inline.h"

int inline_sites_b() { return inline_site() + template_site<2>(); }
