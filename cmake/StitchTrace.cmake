# StitchTrace.cmake: compile code so that stitch can trace its functions
# (include/stitch/ftrace.h).  The same flags as
# `pkg-config --variable=trace_cflags stitch`.
#
#   include(StitchTrace)
#   stitch_trace_target(my_program)          # every C source of the target
#   stitch_trace_sources(a.c b.c)            # or only these files
#   stitch_trace_cflags(var)                 # or just get the flags
#
# Per architecture (what gcc 12 and clang 14 emit is in docs/ftrace.md):
#   x86-64   -fpatchable-function-entry=5
#            gcc: five 1-byte NOPs, clang: one 5-byte NOP; both are handled.
#   AArch64  -fpatchable-function-entry=4,2 -falign-functions=8
#            two NOPs before the function hold the call_ops literal (8-byte
#            aligned, so a single-copy-atomic store), two at its entry.
#   RISC-V   -fpatchable-function-entry=8,4 -falign-functions=8
#            with RVC: eight c.nops, four before the function (the literal),
#            four at its entry (AUIPC t0 + NOP/JALR t0); 8-aligned.
# gcc before 13, every architecture: -fno-function-sections as well.  With
# -ffunction-sections gcc 11 and 12 put all of an object's entry records in
# one __patchable_function_entries section tied (SHF_LINK_ORDER) to the
# object's first function, so -Wl,--gc-sections drops every record of the
# object when that one function is unused, and its other functions cannot
# be traced (gcc bug 110729, fixed in 13; clang ties each record to its own
# function).  With one text section per object, section GC keeps or drops
# an object's functions and their records together.  The flag comes after
# the project's own flags (target_compile_options), so it wins over a
# -ffunction-sections in CMAKE_C_FLAGS.
function(stitch_trace_cflags out)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    set(f -fpatchable-function-entry=5)
  elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
    set(f -fpatchable-function-entry=4,2 -falign-functions=8)
  elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^riscv64$")
    set(f -fpatchable-function-entry=8,4 -falign-functions=8)
  else()
    message(FATAL_ERROR "stitch: no tracing flags for ${CMAKE_SYSTEM_PROCESSOR}")
  endif()
  foreach(lang C CXX)
    if(CMAKE_${lang}_COMPILER_ID STREQUAL "GNU" AND CMAKE_${lang}_COMPILER_VERSION VERSION_LESS 13
       AND NOT "-fno-function-sections" IN_LIST f)
      list(APPEND f -fno-function-sections)
    endif()
  endforeach()
  set(${out} ${f} PARENT_SCOPE)
endfunction()

function(stitch_trace_target target)
  stitch_trace_cflags(f)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C,CXX>:${f}>)
endfunction()

function(stitch_trace_sources)
  stitch_trace_cflags(f)
  set_property(SOURCE ${ARGN} APPEND PROPERTY COMPILE_OPTIONS ${f})
endfunction()
