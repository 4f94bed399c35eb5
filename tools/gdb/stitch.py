# SPDX-License-Identifier: MIT
"""gdb support for programs traced by stitch's function_graph.

A function whose return is hooked (stitch/ftrace.h, ret_func) returns to
stitch__ftrace_return, the return trampoline, and its real return address
is on the thread's shadow stack (src/core/ftrace.c, "hooking returns").
The trampoline has no unwind information a debugger can read, so gdb's
backtrace from inside a hooked call went astray at the first hooked frame
(frames of "??" in libstitch, then garbage).

This unwinder tells gdb where such a frame really returns: at the
trampoline's first instruction the stack pointer is the shadow key of the
hooked call that returns there (src/core/ftrace_unwind.c, "walking through
the return trampoline", gives libgcc's unwinder the same rule), and the
topmost shadow entry whose stored key equals it holds the real return
address.  The registers a call preserves keep their values.  The
trampoline stays in the backtrace as a frame of its own, where the hooked
call returns, named "<stitch return trampoline>" by a frame filter.

    (gdb) source /path/to/stitch/tools/gdb/stitch.py

The layout it reads (struct ft_thread, ft_shadow_stack, ft_shadow in
src/core/ftrace_internal.h) is checked there by _Static_assert.
"""

import gdb
from gdb.FrameDecorator import FrameDecorator
from gdb.unwinder import Unwinder, register_unwinder


class FrameId:
    """A frame's identity for gdb (gdb 14 has gdb.unwinder.FrameId)."""

    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


# struct ft_thread: seq, then the shadow stack pointer
THREAD_SHADOW = 8
# struct ft_shadow_stack: depth, then the entries
STACK_DEPTH = 0
STACK_ENTRIES = 8
DEPTH_MAX = 1024  # STITCH_FTRACE_GRAPH_DEPTH
# struct ft_shadow: orig, key, ...
ENTRY_SIZE = 32
ENTRY_ORIG = 0
ENTRY_KEY = 8

# gdb shows the symbol as "stitch.ftrace_return" (it demangles "__")
TRAMPOLINE = ("stitch__ftrace_return", "stitch.ftrace_return")

# gdb's names of the program counter, the stack pointer and the registers a
# call preserves, per architecture
REGISTERS = {
    "i386:x86-64": ("rip", "rsp", ("rbx", "rbp", "r12", "r13", "r14", "r15")),
    "aarch64": ("pc", "sp", tuple("x%d" % i for i in range(19, 31))),
    "riscv:rv64": ("pc", "sp", tuple("s%d" % i for i in range(12))),
}


def _word(addr):
    mem = gdb.selected_inferior().read_memory(addr, 8)
    return int.from_bytes(bytes(mem), "little")


def _is_trampoline(pc):
    try:
        where = gdb.execute("info symbol %#x" % pc, to_string=True)
    except gdb.error:
        return False
    return where.split(" ", 1)[0] in TRAMPOLINE and where.split(" ", 2)[1] == "in"


def _real_return(sp):
    """The real return address of the hooked call whose key is sp, or None."""
    try:
        thread = int(gdb.parse_and_eval("(long)&stitch__ftrace_thread"))
    except gdb.error:
        return None
    stack = _word(thread + THREAD_SHADOW)
    if not stack:
        return None
    depth = min(_word(stack + STACK_DEPTH), DEPTH_MAX)
    for i in range(depth - 1, -1, -1):
        entry = stack + STACK_ENTRIES + i * ENTRY_SIZE
        # a tail call's entries have bit 0 of the key set: never equal
        if _word(entry + ENTRY_KEY) == sp:
            return _word(entry + ENTRY_ORIG)
    return None


class StitchReturnUnwinder(Unwinder):
    """Unwinds the frame of stitch's return trampoline to the real caller."""

    def __init__(self):
        super().__init__("stitch-ftrace-return")

    def __call__(self, pending_frame):
        regs = REGISTERS.get(pending_frame.architecture().name())
        if regs is None:
            return None
        pc_name, sp_name, preserved = regs
        pc = pending_frame.read_register(pc_name)
        if not _is_trampoline(int(pc)):
            return None
        sp = pending_frame.read_register(sp_name)
        orig = _real_return(int(sp))
        if orig is None:
            return None
        info = pending_frame.create_unwind_info(FrameId(sp, pc))
        info.add_saved_register(pc_name, gdb.Value(orig).cast(pc.type))
        info.add_saved_register(sp_name, sp)
        for name in preserved:
            info.add_saved_register(name, pending_frame.read_register(name))
        return info


class _TrampolineFrame(FrameDecorator):
    """Names the trampoline's frames (gdb looks a caller's pc up one byte
    before it, which is not in the trampoline, and shows "??")."""

    def function(self):
        return "<stitch return trampoline>"


class StitchFrameFilter:
    """bt: the return trampoline's frames by a name."""

    def __init__(self):
        self.name = "stitch-ftrace-return"
        self.priority = 100
        self.enabled = True
        gdb.frame_filters[self.name] = self

    def filter(self, frames):
        for frame in frames:
            if _is_trampoline(frame.inferior_frame().pc()):
                yield _TrampolineFrame(frame)
            else:
                yield frame


register_unwinder(None, StitchReturnUnwinder(), replace=True)
StitchFrameFilter()
