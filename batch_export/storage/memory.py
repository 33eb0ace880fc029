"""Keeping a long streaming process's memory flat: big buffers go back to the OS when freed.

An upload holds a part (8 MiB) or two at a time, allocated and freed again
for every part of every export. glibc serves such blocks from ``mmap`` at
first, but after the first free it raises its mmap threshold up to 32 MiB
and serves them from the heap and from per-thread arenas instead, where
freed parts stay resident (docs/PERFORMANCE.md has the measurements). ``mallopt`` pins it (1 MiB) and bounds the arenas; on another C
library this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

__all__ = ["return_large_buffers_to_os"]

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
THRESHOLD = 1024 * 1024
ARENAS = 2


@functools.cache
def return_large_buffers_to_os() -> bool:
    """Pin glibc's mmap threshold and arena count (once); whether it took effect."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, THRESHOLD)) and bool(mallopt(_M_ARENA_MAX, ARENAS))
