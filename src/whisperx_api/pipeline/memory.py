"""Giving the memory a finished stage freed back to the system.

glibc's allocator keeps freed blocks in its per-thread arenas: after the VAD of a one-hour file
the process held 140 MB it no longer used, and each later stage's working set came on top of
it. malloc_trim returns them (measured: 1,427 -> 1,287 MB after that VAD; a warm inference
process 1,412 -> 1,263 MB after a short file's run).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim this way
        return None
    return trim


def release_freed_memory() -> None:
    trim = _trim()
    if trim is not None:
        trim(0)
