"""What a pipeline stage leaves behind (memory.release_after_stage): the memory it freed and the
buffers torch's MKL pooled always, and the library pages it touched once it ran
LIBRARY_PAGES_AFTER_S or longer, so a warm service does not rest, nor peak, at what its last
task touched (README "Where the memory goes")."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import REPO
from whisperx_api.memory import LIBRARY_PAGES_AFTER_S

# In a process of its own: this test process's library pages are other tests' to measure.
# torch's import touches its GPU libraries' pages (over 50 MB of them on a CUDA build), which
# nothing here runs again, so whatever leaves them resident is what the call left.
PROBE = """
import json, torch
from whisperx_api import memory
from tests.support import GPU_LIBRARY, resident_library_pages
def resident():
    return resident_library_pages("self", GPU_LIBRARY)
before = resident()
memory.release_after_stage(memory.LIBRARY_PAGES_AFTER_S * 0.9)
short = resident()
memory.release_after_stage(memory.LIBRARY_PAGES_AFTER_S)
print(json.dumps([before, short, resident()]))
"""


def test_a_stage_that_ran_long_enough_leaves_the_library_pages_it_touched() -> None:
    assert 1.0 <= LIBRARY_PAGES_AFTER_S <= 30.0  # costs 70-90 ms: a few % of such a stage at most
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    before, after_short, after_long = json.loads(out.stdout.strip().splitlines()[-1])
    assert before > 50 * 2**20
    assert after_short > 0.9 * before  # a short stage: only its freed memory, not worth the smaps read
    assert after_long < 4 * 2**20


# torch's MKL pools the buffers its routines take (mkl_serv_mem_stat: bytes and buffers held).
MKL_PROBE = """
import ctypes, json, torch
import torchaudio.compliance.kaldi as kaldi
from pathlib import Path
from whisperx_api import memory
lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
lib.mkl_serv_mem_stat.restype = ctypes.c_int64
def held():
    buffers = ctypes.c_int(0)
    return lib.mkl_serv_mem_stat(ctypes.byref(buffers)), buffers.value
square = torch.randn(1024, 1024)
product = square @ square
kaldi.fbank(torch.randn(1, 32000), num_mel_bins=80, sample_frequency=16000, dither=0.0)
before = held()
memory.release_after_stage(0.0)
after = held()
again = square @ square  # MKL takes new buffers and computes the same
print(json.dumps([before, after, bool(torch.equal(product, again))]))
"""


def test_a_stage_hands_back_the_buffers_torchs_mkl_pooled() -> None:
    out = subprocess.run(
        [sys.executable, "-c", MKL_PROBE], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    (held_bytes, held_buffers), after, same = json.loads(out.stdout.strip().splitlines()[-1])
    assert held_bytes > 2**20 and held_buffers >= 1  # the products' buffers, kept in MKL's pool
    assert after == [0, 0]
    assert same
