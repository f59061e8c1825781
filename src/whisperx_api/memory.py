"""The process's memory: long-lived objects kept out of the garbage collector's full
collections, and memory the pipeline's stages freed handed back to the system.

With torch, whisperx and pyannote imported a process holds over half a million objects, and
loaded models add about a hundred thousand more. A full collection walks them all: 0.6 s with
the GIL held, during which no request is answered (it was the /health p99 under load), and
longer when it runs on a low-priority inference thread. Modules and loaded models live until
the process ends or the model is unloaded, so the collector has nothing to find among them:
they are frozen (gc.freeze), and unfrozen for the one collection that follows an unload.

glibc's allocator keeps freed blocks in its per-thread arenas: after the VAD of a one-hour file
the process held 140 MB it no longer used, and each later stage's working set came on top of
it. malloc_trim returns them (measured: 1,427 -> 1,287 MB after that VAD; a warm inference
process 1,412 -> 1,263 MB after a short file's run).

oneDNN, which runs torch's convolutions on a CPU, keeps a compiled primitive (with its working
buffers) for each input shape it has seen, up to 1,024 of them. The diarizer's CAM++ sees a new
shape with nearly every batch (its clips' lengths vary), so that cache filled up during one
recording and stayed full.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
from collections.abc import Callable, MutableMapping

# oneDNN's primitive cache, in entries (its default is 1,024). Measured on the diarizer alone
# (bench_diarizer_memory.py --primitive-cache): its embeddings' peak 473-587 MB above their start
# with the default, 266-334 with 32, for 20 minutes of speech, in the same time (60 minutes:
# 348-537 against 291-305 MB); with 8 entries, 20 % slower.
ONEDNN_CACHED_PRIMITIVES = 32


def limit_native_caches(environ: MutableMapping[str, str] = os.environ) -> None:
    """Bound the caches native libraries size from the environment, unless the operator set them.
    Before torch runs its first convolution: oneDNN reads its setting once."""
    environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_CACHED_PRIMITIVES))


def freeze_long_lived() -> None:
    """Take everything alive now out of sight of future collections."""
    gc.freeze()


def collect_unloaded() -> None:
    """After a model is unloaded: find its reference cycles, then freeze what is still alive."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim this way
        return None
    return trim


def release_freed_memory() -> None:
    """Hand the blocks freed since to the system (a pipeline stage's working set)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
