"""The inference process: each web or worker process runs the pipeline in a child process of its
own, so the pipeline's Python never competes with the event loop for the GIL, and a child that
dies (killed, out of memory, a native crash) fails only the calls it was running."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.audio import concatenate, speak
from tests.metrics import wer
from tests.support import GPU_LIBRARY, make_settings, resident_gpu_library_data, resident_library_pages
from whisperx_api.pipeline.errors import PipelineError
from whisperx_api.pipeline.options import EngineConfig, PipelineOptions, WhisperOptions
from whisperx_api.pipeline.progress import Progress
from whisperx_api.pipeline.remote import EngineProcess, RemoteEngine

pytestmark = pytest.mark.models

TEXT = "The quick brown fox jumps over the lazy dog."
TINY = PipelineOptions(whisper=WhisperOptions(model="tiny.en", language="en", device="cpu", compute_type="int8"))


async def test_a_killed_inference_process_fails_its_call_and_the_next_call_starts_a_new_one(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'r.db'}")
    process = EngineProcess(logging.WARNING)
    engine = RemoteEngine(process, EngineConfig(models_dir=settings.resolved_models_dir))
    line = speak(TEXT, tmp_path / "line.wav")
    long_clip = concatenate([line] * 12, tmp_path / "long.wav")
    try:
        await asyncio.to_thread(engine.start)
        first = process.pid
        assert first is not None and first != os.getpid()
        progress = Progress()
        running = asyncio.ensure_future(engine.run(long_clip, TINY, progress, align=False, diarize=False))
        while progress.snapshot()[0] == 0:  # progress crosses the pipe: the call runs in the child
            await asyncio.sleep(0.02)
        os.kill(first, signal.SIGKILL)
        with pytest.raises(PipelineError) as lost:
            await asyncio.wait_for(running, 30)
        assert lost.value.code == "INFERENCE_PROCESS_EXITED" and "-9" in lost.value.message

        result = await asyncio.wait_for(engine.run(line, TINY, Progress(), align=False, diarize=False), 120)
        assert process.pid not in (None, first)
        assert wer(TEXT, result.text) <= 0.15
        # a pipeline failure keeps its type and code on the way back
        with pytest.raises(PipelineError) as missing:
            await engine.run(line, PipelineOptions(whisper=WhisperOptions(model="large-v3")), Progress())
        assert missing.value.code == "MODEL_NOT_FOUND"
    finally:
        await asyncio.to_thread(process.stop)
    assert process.pid is None


def cpu_seconds(pid: int) -> float:
    """CPU time of a process, all its threads (utime + stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_a_cancelled_call_stops_its_work_in_the_inference_process(tmp_path: Path) -> None:
    """A caller that goes away (a client gone, a job aborted or timed out) stops its call's work
    in the child at the call's next progress report, instead of leaving ten minutes of audio to
    run to the end on the cores and the compute slot the next call needs."""
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'r.db'}")
    process = EngineProcess(logging.WARNING)
    engine = RemoteEngine(process, EngineConfig(models_dir=settings.resolved_models_dir))
    line = speak(TEXT, tmp_path / "line.wav")
    long_clip = concatenate([line] * 200, tmp_path / "long.wav")  # about ten minutes: a minute of work or more
    try:
        await asyncio.to_thread(engine.start)
        assert process.pid is not None
        progress = Progress()
        running = asyncio.ensure_future(engine.run(long_clip, TINY, progress, align=True, diarize=True))
        deadline = time.monotonic() + 120
        while progress.snapshot()[1] != "transcribing":  # VAD done: the models are loaded, the work is on
            assert time.monotonic() < deadline and not running.done(), progress.snapshot()
            await asyncio.sleep(0.05)
        running.cancel()
        cancelled = time.monotonic()
        # the child goes idle within a batch or two (seconds), long before the work would be done
        before = cpu_seconds(process.pid)
        while True:
            await asyncio.sleep(1)
            now = cpu_seconds(process.pid)
            if now - before < 0.15:
                break
            before = now
            assert time.monotonic() - cancelled < 20, "the cancelled call's work goes on"
        with pytest.raises(asyncio.CancelledError):
            await running
        # the next call is served at once, by the same child
        pid = process.pid
        result = await asyncio.wait_for(engine.run(line, TINY, Progress(), align=False, diarize=False), 60)
        assert wer(TEXT, result.text) <= 0.15 and process.pid == pid
    finally:
        await asyncio.to_thread(process.stop)


def test_the_gpu_libraries_data_released_on_a_cpu_host_is_never_read_again() -> None:
    """memory.release_gpu_library_data zeroes cuBLASLt's initialised data. Safe because nothing
    reads it without a GPU: torch's CPU work runs, and even a normal interpreter exit (whose static
    destructors the inference process skips with os._exit) ends cleanly."""
    code = (
        "import sys, torch; from whisperx_api.memory import release_gpu_library_data as r;"
        "assert not torch.cuda.is_available(); print(r());"
        "x = torch.nn.Conv1d(1, 4, 3)(torch.randn(1, 1, 1000)); y = torch.randn(64, 64) @ torch.randn(64, 64);"
        "print(torch.cuda.is_available()); sys.exit(0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    released, available = done.stdout.split()
    assert int(released) > 60 * 2**20 and available == "False"


def test_the_web_process_does_not_import_the_ml_stack() -> None:
    # torch and its kin live in the inference process only: memory, start-up time and the GIL
    code = (
        "import sys, whisperx_api.app, whisperx_api.transcription.work, whisperx_api.transcription.jobs, whisperx_api.cli;"
        "heavy = sorted(m for m in ('torch', 'pyannote.audio', 'ctranslate2', 'faster_whisper') if m in sys.modules);"
        "print(','.join(heavy))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


async def test_the_inference_process_keeps_only_the_library_pages_it_uses(tmp_path: Path) -> None:
    """Loading torch (its CUDA build: cuBLAS, Triton and the rest), pyannote and whisperx left
    ~400 MB of their libraries' pages resident in the inference process, half of them GPU code a
    CPU never runs. They go after the imports; a transcription takes back only what it uses."""
    import torch

    assert not torch.cuda.is_available(), "a test for a host without a GPU"
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'r.db'}")
    process = EngineProcess(logging.WARNING)
    engine = RemoteEngine(process, EngineConfig(models_dir=settings.resolved_models_dir))
    line = speak(TEXT, tmp_path / "line.wav")
    # this test's own process loaded the same libraries: what the child would hold
    assert resident_library_pages(os.getpid(), GPU_LIBRARY) > 50 * 2**20
    assert resident_gpu_library_data(os.getpid()) > 60 * 2**20  # cuBLASLt's: 78 MB on 2026-12-05
    try:
        await asyncio.to_thread(engine.start)
        assert process.pid is not None
        assert resident_library_pages(process.pid) < 32 * 2**20
        assert resident_gpu_library_data(process.pid) < 2**20
        result = await asyncio.wait_for(engine.run(line, TINY, Progress(), align=True, diarize=True), 120)
        assert wer(TEXT, result.text) <= 0.15
        assert resident_gpu_library_data(process.pid) < 2**20  # nothing wrote to it again
        # never run here: of the ~180 MB the imports touched, only what symbol lookups and the
        # kernel's fault-around (neighbours already in the page cache) bring back. 4.66 MB on a
        # fresh machine on 2026-12-05, the same with the code before that day's change; < 4 before
        assert resident_library_pages(process.pid, GPU_LIBRARY) < 16 * 2**20
        # what a transcription uses (of ~365 MB at start): 141 MB on that fresh machine, < 120 before
        assert resident_library_pages(process.pid) < 200 * 2**20
    finally:
        await asyncio.to_thread(process.stop)


async def test_the_parent_owns_the_inference_process_life(tmp_path: Path) -> None:
    """A stop signal sent to the whole process group (systemd's default, `kill -- -PGID`) leaves
    the child to its parent, which stops it after its own drain; and a child that dies while
    starting fails start() at once, not after READY_TIMEOUT_S."""
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'r.db'}")
    process = EngineProcess(logging.WARNING)
    engine = RemoteEngine(process, EngineConfig(models_dir=settings.resolved_models_dir))
    line = speak(TEXT, tmp_path / "line.wav")
    try:
        starting = asyncio.ensure_future(asyncio.to_thread(engine.start))
        deadline = time.monotonic() + 10
        while process.pid is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)  # long before it has imported the pipeline
        killed = time.monotonic()
        with pytest.raises(PipelineError) as gone:
            await asyncio.wait_for(starting, 30)
        assert gone.value.code == "INFERENCE_PROCESS_EXITED" and "-9" in gone.value.message
        assert time.monotonic() - killed < 5

        await asyncio.to_thread(engine.start)  # a new child
        child = process.pid
        assert child is not None
        os.kill(child, signal.SIGTERM)
        os.kill(child, signal.SIGINT)
        result = await asyncio.wait_for(engine.run(line, TINY, Progress(), align=False, diarize=False), 60)
        assert wer(TEXT, result.text) <= 0.15 and process.pid == child
    finally:
        await asyncio.to_thread(process.stop)
    assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text()


class _Records(logging.Handler):
    """The records a logger emits, whether or not pytest's logging plugin is on."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_a_child_whose_rest_grew_is_replaced_between_calls_never_during_one(tmp_path: Path) -> None:
    """INFERENCE_RECYCLE_GROWTH_MB, with a growth of one byte: the child reports its rest (RssAnon)
    after each call that leaves it idle, and the parent replaces a grown one, by a fresh child
    started at once, only while no call is in flight or answered but not yet read."""
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'r.db'}")
    process = EngineProcess(logging.WARNING, recycle_growth=1)
    config = EngineConfig(models_dir=settings.resolved_models_dir)
    engine = RemoteEngine(process, config)
    line = speak(TEXT, tmp_path / "line.wav")
    long_clip = concatenate([line] * 12, tmp_path / "long.wav")
    logger, caught = logging.getLogger("whisperx_api.pipeline.remote"), _Records()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(caught)
    try:
        await asyncio.to_thread(engine.start)
        first = process.pid
        assert first is not None
        assert await engine.model_loads() == {}  # the rest after it: the baseline, no model loaded
        # a second configuration: an engine of its own in the child (its thread, its arena), and
        # no model: the child rests higher with the same models, and says so
        other = RemoteEngine(process, EngineConfig(models_dir=settings.resolved_models_dir, model_cache_size=3))
        assert await other.model_loads() == {}
        deadline = time.monotonic() + 30
        # the reader logs the replacement once the fresh child is started
        while not any("replaced by a fresh one" in r.getMessage() for r in caught.records):
            assert time.monotonic() < deadline, "the grown child was not replaced"
            await asyncio.sleep(0.05)
        assert process.pid not in (None, first)
        assert not any(r.levelno >= logging.ERROR for r in caught.records)  # an expected exit
        deadline = time.monotonic() + 10
        while Path(f"/proc/{first}").exists() and "zombie" not in Path(f"/proc/{first}/status").read_text():
            assert time.monotonic() < deadline, "the replaced child did not exit"
            await asyncio.sleep(0.05)

        # a call in flight keeps its child, whatever it reports, and gets its answer
        progress = Progress()
        running = asyncio.ensure_future(engine.run(long_clip, TINY, progress, align=False, diarize=False))
        while progress.snapshot()[0] == 0:
            await asyncio.sleep(0.02)
        child = process.pid
        assert child is not None and process._process is not None
        assert not process.recycle(process._process)
        result = await asyncio.wait_for(running, 120)
        assert wer(" ".join([TEXT] * 12), result.text) <= 0.15
        assert not any(r.levelno >= logging.ERROR for r in caught.records)
    finally:
        logger.removeHandler(caught)
        logger.setLevel(level)
        await asyncio.to_thread(process.stop)
