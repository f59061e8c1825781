"""The inference process's allocator settings (memory.tune_allocator, memory.buffers_kept):
a large working buffer that an inference thread frees and asks for again is reused from the heap
instead of faulting in afresh, while a stage that keeps its buffers runs (Whisper's decoder, the
diarizer); outside it the heap's top goes back on
free() as before. Measured in page faults, which do not depend on the host's pace."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import REPO

# In a process of its own: the settings are process-wide, and the arena a thread uses is fixed at
# its first allocation. The buffer is Whisper base's encoder attention for 2 windows (144 MB),
# allocated, written through and freed 8 times on a thread, as the decoder's calls do.
PROBE = """
import ctypes, json, resource, sys, threading
from whisperx_api import memory
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
SIZE = 144 * 2**20
tuned = memory.tune_allocator() if sys.argv[1] == "tuned" else False
def calls(out, kept):
    def run():
        for _ in range(8):
            block = libc.malloc(SIZE)
            ctypes.memset(block, 1, SIZE)
            libc.free(block)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    if kept:
        with memory.buffers_kept():
            run()
    else:
        run()
    out.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
out = []
def thread():  # an inference thread: its first allocation picks its arena
    calls(out, kept=True)
    calls(out, kept=False)
t = threading.Thread(target=thread)
t.start(); t.join()
print(json.dumps({"tuned": tuned, "kept": out[0], "after": out[1]}))
"""

PAGES = 144 * 2**20 // 4096


def probe(mode: str) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    result: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_decoders_buffer_is_reused_instead_of_faulting_in_on_every_call() -> None:
    default, tuned = probe("default"), probe("tuned")
    assert tuned["tuned"]
    # glibc's defaults: a block this large is a fresh mapping each time, every page faults in
    assert default["kept"] > 7 * PAGES
    assert default["after"] > 7 * PAGES
    # tuned: the first call faults it in, the seven after it reuse it
    assert tuned["kept"] < 1.5 * PAGES
    # outside those stages the heap's top goes back again when freed (the VAD's setting):
    # the block the decoder kept serves the first call, the other seven fault in
    assert tuned["after"] > 6.5 * PAGES
