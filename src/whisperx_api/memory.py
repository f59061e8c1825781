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

Loading a library touches pages of it that its work never reads again (relocation tables,
symbol lookups, start-up code), and they stay resident for the process's life. The inference
process loads over 5,000 modules and their native libraries: about 400 MB of such file pages,
half of them the GPU libraries torch's CUDA build maps (cuBLAS, cuSPARSELt, NVRTC, nvJitLink,
Triton; the only Linux torch wheel on PyPI is that build), which a host without a GPU never runs.
One of them, cuBLASLt, also fills most of its 81 MB of zero-initialised data as it loads: memory
of the process's own, which no page cache holds and only release_gpu_library_data hands back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import mmap
import os
import struct
import sys
import threading
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

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
def _glibc_function(name: str) -> Callable[..., int] | None:
    """One of glibc's malloc functions, or None where the C library is not glibc (musl, macOS):
    its allocator then keeps its own ways."""
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(library), name)
    except (OSError, AttributeError):
        return None
    return function


def _malloc_trim() -> Callable[[int], int] | None:
    return _glibc_function("malloc_trim")


@functools.cache
def _torch_mkl_free_buffers() -> Callable[[], None] | None:
    """The pool release of the MKL linked into torch's CPU library (its exported name is MKL's
    own service function behind mkl_free_buffers; CTranslate2 links an MKL of its own), or None
    where torch is built without MKL (aarch64 wheels use OpenBLAS)."""
    location = sys.modules["torch"].__file__
    try:
        free = ctypes.CDLL(str(Path(str(location)).parent / "lib" / "libtorch_cpu.so")).mkl_serv_free_buffers
    except (OSError, AttributeError):
        return None
    free.argtypes, free.restype = [], None
    release: Callable[[], None] = free
    return release


def release_native_pools() -> None:
    """Hand the buffers torch's MKL keeps in its own pool back to the allocator, where
    release_freed_memory can return them; nothing where torch is not loaded (the web process).

    MKL's memory manager keeps every buffer its routines asked for (the matrix products' packed
    panels, the filterbanks' transforms) for reuse and gives none back: to glibc they stay in
    use. The diarizer's pool held 9 MB after a 2-minute task, 26 MB after an hour (the diarizer
    alone in one process, 2026-12-06) and stayed at that after later tasks. Freeing unused
    buffers takes ~0.1 ms; the next stage's first calls take new ones."""
    if "torch" not in sys.modules:
        return
    free = _torch_mkl_free_buffers()
    if free is not None:
        free()


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
# Blocks below this come from the heap, where a freed one serves the next request; above it each
# is a fresh mapping whose every page faults in on first touch. glibc's own threshold moves up to
# 32 MB at most, and Whisper's encoder makes a 144 MB attention buffer per call (base, 2 windows).
HEAP_BLOCKS_UP_TO = 256 * 2**20
# free() hands the heap's top back only beyond this (release_freed_memory hands back the rest);
# while a stage that asks again and again for the same large buffers runs, beyond KEPT_TRIM_AT,
# so that they stay for its next call (buffers_kept)
TRIM_AT = 64 * 2**20
KEPT_TRIM_AT = 512 * 2**20


class _AllocatorTuning:
    """How many stages want the heap's top kept, and whether this process tuned glibc."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tuned = False
        self.keeping = 0


_tuning = _AllocatorTuning()


def _mallopt() -> Callable[[int, int], int] | None:
    return _glibc_function("mallopt")


def tune_allocator() -> bool:
    """Keep the pipeline's large working buffers in the heap for reuse instead of mapping them
    afresh on each call, for the inference process, before its threads allocate; False where
    glibc is not the allocator.

    With glibc's defaults, the threads' arenas grow in 64 MB heaps that are made and dropped as
    the stages' tensors come and go, and larger blocks are always fresh mappings: on a 4-minute
    task (base, 2 cores) the process took 3.5-3.8 million page faults, 9-10 s of kernel time in
    34 s. One arena (the main one, which grows without the 64 MB limit) and a fixed threshold of
    256 MB: 0.5 million, 3.4-3.9 s, and the task 31-34 s. What the stages free still goes back
    every 5 s and after each stage (release_freed_memory); threads share the one arena's lock,
    which the pipeline's few allocating threads do not contend for (the decoders' compute threads
    do not allocate)."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    with _tuning.lock:
        _tuning.tuned = bool(
            mallopt(_M_ARENA_MAX, 1)
            and mallopt(_M_MMAP_THRESHOLD, HEAP_BLOCKS_UP_TO)
            and mallopt(_M_TRIM_THRESHOLD, TRIM_AT)
        )
    return _tuning.tuned


@contextmanager
def buffers_kept() -> Iterator[None]:
    """While a stage runs whose model frees its largest buffers at the heap's top after each call
    and asks for them again on the next: they stay in the heap between its calls, where free()
    would hand them back past the trim threshold and the next call fault them in again. Whatever
    this process's allocator: where tune_allocator did not run, only keeping_buffers tells.

    Measured (base, 2 cores, 2026-12-06): Whisper's decoder (CTranslate2) took a million faults in
    a 4-minute task's transcription. The default diarizer alone, as the inference process runs it:
    segmentation-3.0's batches and CAM++'s took 9.2 million faults for an hour of a conversation,
    21 s of kernel time, and 1.3 million, 9.5 s, with them kept (117 against 115 s; the stage's
    peak 805 against 851 MB RssAnon, one run each); 4 minutes: 0.82-0.86 million against
    0.10-0.15, 8.8 against 8.1-8.2 s. The VAD's model has no faults to save (0.03 million for 15
    minutes, either way) and keeps the default: raised for every stage, the threshold made a
    4-minute task's VAD slower (4.5 against 5.5-6 s), which the VAD alone did not repeat (12.1-13.1
    against 12.3 s for 15 minutes). Counted and process-wide: with two tasks at once, the
    threshold falls back when neither keeps, and a VAD beside a decoder runs with it raised."""
    mallopt = _mallopt()
    with _tuning.lock:
        _tuning.keeping += 1
        if mallopt is not None and _tuning.tuned:
            mallopt(_M_TRIM_THRESHOLD, KEPT_TRIM_AT)
    try:
        yield
    finally:
        with _tuning.lock:
            _tuning.keeping -= 1
            if mallopt is not None and _tuning.tuned and not _tuning.keeping:
                mallopt(_M_TRIM_THRESHOLD, TRIM_AT)


def keeping_buffers() -> bool:
    """Whether a stage in buffers_kept runs now."""
    with _tuning.lock:
        return _tuning.keeping > 0


def release_freed_memory() -> None:
    """Hand the blocks freed since to the system (a pipeline stage's working set)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


# A stage that ran this long also leaves the library pages it touched behind it (release_library_pages
# costs 70-90 ms: under 2 % of such a stage, and a shorter stage touched little). Each stage uses
# its own libraries: torch's convolutions for the VAD and the diarizer, CTranslate2 for Whisper.
# Kept, they stayed resident under every later stage, and a warm service rested at what its last
# task had touched. Measured on 10 minutes of a two-voice conversation, three tasks one after the
# other in one service: the inference process at rest 809-812 MB RSS against 938-947, the warm
# tasks' peak for all processes 1,464 / 1,445 against 1,503 / 1,549 MB, in the same time.
LIBRARY_PAGES_AFTER_S = 5.0


def release_after_stage(ran_s: float) -> None:
    """What a pipeline stage that ran for `ran_s` seconds leaves behind: the buffers torch's MKL
    pooled and the memory it freed, and the library pages it touched when it ran long enough for
    that to be worth the cost."""
    release_native_pools()
    release_freed_memory()
    if ran_s >= LIBRARY_PAGES_AFTER_S:
        release_library_pages()


@functools.cache
def _madvise() -> Callable[[int, int, int], int] | None:
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes, madvise.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    advise: Callable[[int, int, int], int] = madvise
    return advise


class Mapping(NamedTuple):
    start: int
    end: int
    resident: int  # bytes
    path: str  # "" for anonymous memory; [heap], [stack] and the like for the kernel's own
    writable: bool = False
    offset: int = 0  # into the file
    anonymous: int = 0  # bytes of the process's own: copy-on-write pages of a file, or anonymous memory


def mappings(pid: int | str = "self") -> list[Mapping]:
    """A process's mappings in address order, from /proc/PID/smaps (none where there is none)."""
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:  # not Linux
        return []
    found: list[Mapping] = []
    for line in lines:
        head, _, rest = line.partition(" ")
        if "-" in head and not head.endswith(":"):  # a mapping's header: range perms offset dev inode path
            fields = rest.split(maxsplit=4)
            start, end = (int(x, 16) for x in head.split("-"))
            path = fields[4] if len(fields) == 5 else ""
            found.append(Mapping(start, end, 0, path, fields[0][1] == "w", int(fields[1], 16)))
        elif found and head == "Rss:":
            found[-1] = found[-1]._replace(resident=int(rest.split()[0]) * 1024)
        elif found and head == "Anonymous:":
            found[-1] = found[-1]._replace(anonymous=int(rest.split()[0]) * 1024)
    return found


def droppable_file_mappings(pid: int | str = "self") -> list[Mapping]:
    """A process's file mappings whose resident pages are all the file's own: mapped read-only
    and without a copy-on-write page (`Anonymous: 0 kB`), so dropping them loses nothing (a page
    read again comes back from the page cache, or the file, unchanged)."""
    return [
        m
        for m in mappings(pid)
        # a file's pages, not a device's (a GPU driver's mappings are memory of the card)
        if not m.writable and m.path.startswith("/") and not m.path.startswith("/dev/")
        and m.resident and not m.anonymous
    ]  # fmt: skip


def release_library_pages() -> int:
    """Take the pages of droppable_file_mappings out of this process: what loading the libraries
    touched. Those the work uses come back from the page cache at their first use; the rest stay
    out (measured in a process that had run a transcription with alignment and diarization: 222
    MB released, 63 MB back after the next one, which took its usual time; on a host without a GPU
    the GPU libraries' 180 MB never come back). Returns the bytes released. Other threads may run
    meanwhile: a page one of them needs comes back at its next use, and a library being loaded is
    writable while it is relocated, and has copied pages after, so it is left alone."""
    advise = _madvise()
    if advise is None:
        return 0
    droppable = droppable_file_mappings()
    return sum(m.resident for m in droppable if advise(m.start, m.end - m.start, mmap.MADV_DONTNEED) == 0)


# Libraries that torch's CUDA build links, whose code runs only on a GPU, and whose static
# constructors fill their zero-initialised data (.bss, .lbss) as they load, GPU or not. Measured:
# loading cuBLASLt 12 alone +89 MB RssAnon; in the inference process after its imports, 78 MB
# of that data resident.
GPU_ONLY_LIBRARIES = ("libcublasLt.so.",)
_PT_LOAD, _PF_W = 1, 2


def release_gpu_library_data() -> int:
    """On a host without a GPU (the caller knows): hand back the zero-initialised data of
    GPU_ONLY_LIBRARIES. Their pages read zero afterwards, which is safe only because nothing runs
    their code without a GPU: torch and CTranslate2 call cuBLAS for work on a CUDA device, and
    neither sees one. Even their static destructors, which a normal exit runs (the inference
    process ends by os._exit, but not if serve() raises), end cleanly on the zeroed data (tested).
    Returns how far the process's resident anonymous memory fell."""
    advise = _madvise()
    if advise is None:
        return 0
    present = mappings()
    # the loader maps each zero-fill area anonymously, from its first whole page: only there
    anonymous = {m.start: m.end for m in present if not m.path}
    before = resident_anonymous()
    for path, mapped_at in loaded_libraries(present, GPU_ONLY_LIBRARIES).items():
        for start, end in zero_filled_ranges(path, mapped_at):
            if anonymous.get(start, 0) >= end:
                advise(start, end - start, mmap.MADV_DONTNEED)
    return max(0, before - resident_anonymous())


def resident_anonymous() -> int:
    """This process's resident memory that is its own (RssAnon: heap, stacks, copied pages; not
    the files it maps, whose pages come and go with release_library_pages), in bytes; 0 where
    /proc does not say."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:  # not Linux
        return 0
    for line in lines:
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def loaded_libraries(present: list[Mapping], names: tuple[str, ...]) -> dict[str, int]:
    """Each loaded library whose file name starts with one of `names`, and the lowest address
    its file's first page is mapped at."""
    found: dict[str, int] = {}
    for m in present:
        if m.offset == 0 and m.path.startswith("/") and Path(m.path).name.startswith(names):
            found.setdefault(m.path, m.start)
    return found


def zero_filled_ranges(path: str, mapped_at: int) -> list[tuple[int, int]]:
    """The whole pages of a loaded 64-bit little-endian ELF's writable segments that are not in
    its file (memory size past file size: .bss and the like), from its program headers; the
    file's first page is mapped at `mapped_at`, where its first segment's page is."""
    page = mmap.PAGESIZE
    try:
        with open(path, "rb") as elf:
            header = elf.read(64)
            if header[:4] != b"\x7fELF" or header[4:6] != b"\x02\x01":
                return []
            (table_at,) = struct.unpack_from("<Q", header, 32)
            entry_size, entries = struct.unpack_from("<HH", header, 54)
            elf.seek(table_at)
            table = elf.read(entry_size * entries)
        # type, flags, offset, address, physical address, file size, memory size, alignment
        segments = [struct.unpack_from("<IIQQQQQQ", table, i * entry_size) for i in range(entries)]
    except (OSError, struct.error):  # unreadable, or not what its header says
        return []
    loads = [s for s in segments if s[0] == _PT_LOAD]
    if not loads:
        return []
    bias = mapped_at - min(s[3] for s in loads) // page * page
    ranges = []
    for _, flags, _, address, _, file_size, memory_size, _ in loads:
        if flags & _PF_W and memory_size > file_size:
            # the page holding the segment's last file bytes keeps them: start at the next one
            start = -(-(bias + address + file_size) // page) * page
            end = -(-(bias + address + memory_size) // page) * page
            if end > start:
                ranges.append((start, end))
    return ranges
