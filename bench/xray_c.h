/* SPDX-License-Identifier: MIT */
/*
 * The part of LLVM XRay's runtime interface the benchmarks use, declared
 * for C: clang's <xray/xray_interface.h> is C++ only (it includes
 * <cstddef>), although the functions are extern "C".  Names and values as
 * in that header (LLVM 14); the enums are int-sized in both languages.
 */
#ifndef STITCH_BENCH_XRAY_C_H
#define STITCH_BENCH_XRAY_C_H

#include <stddef.h>
#include <stdint.h>

enum bench_xray_entry_type { BENCH_XRAY_ENTRY = 0, BENCH_XRAY_EXIT = 1, BENCH_XRAY_TAIL = 2 };
enum bench_xray_status { BENCH_XRAY_NOT_INITIALIZED = 0, BENCH_XRAY_SUCCESS = 1 };

int __xray_set_handler(void (*entry)(int32_t id, enum bench_xray_entry_type type));
enum bench_xray_status __xray_patch(void);
enum bench_xray_status __xray_unpatch(void);
enum bench_xray_status __xray_patch_function(int32_t id);
enum bench_xray_status __xray_unpatch_function(int32_t id);
uintptr_t __xray_function_address(int32_t id);
size_t __xray_max_function_id(void);

#endif
