"""The web process's memory at rest before and after it serves a long recording's result: a
completed task whose stored result has the shape and size of a four-hour transcription (segments
with their tokens and words, word_segments, speakers), read through `GET /task/{id}` a few times
by a real service on SQLite. Reports the web process's RSS and RssAnon at rest before the first
read and after the last.

Before that, the web process's side of the task's end, in a fresh process on each checkout's `src`:
the result received from a child process through a pipe on a thread (as the engine's reader
thread receives it), written to its row through TaskRows on SQLite (the task's final write),
dropped and trimmed (as the worker does after each task); RssAnon before, after the write and
after the trim.

`--code DIR ...` runs the same bench against the `src` of each checkout (a `git worktree` of an
earlier commit, say), one after the other, so a change is measured beside what it changes.

    uv run python tests/bench/bench_web_memory.py [--hours 4] [--reads 3] [--code . /tmp/before]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx
import msgspec

from tests.bench.bench_long import rss_mb
from tests.support import clear_queue, descendants, free_port, make_bench_settings, settings_env, start_server
from whisperx_api.db.config import make_db_config, upgrade_database
from whisperx_api.db.models import Task

RESULTS = Path(__file__).parent / "results"
WORDS_PER_MINUTE = 150  # a conversation's pace
WORDS_PER_SEGMENT = 12
REST_S = 3.0


def long_result(hours: float) -> dict[str, object]:
    """A full_process result as a four-hour conversation gives one, with made-up words."""
    segments, word_segments = [], []
    clock = 0.0
    for index in range(int(hours * 60 * WORDS_PER_MINUTE / WORDS_PER_SEGMENT)):
        speaker = f"SPEAKER_0{index % 2}"
        words = []
        for w in range(WORDS_PER_SEGMENT):
            start = round(clock + 0.4 * w, 3)
            words.append({"word": f"word{w}", "start": start, "end": round(start + 0.3, 3), "score": 0.812,
                          "speaker": speaker})  # fmt: skip
        segments.append({
            "start": round(clock, 3), "end": round(clock + 0.4 * WORDS_PER_SEGMENT, 3),
            "text": " ".join(w["word"] for w in words), "words": words, "speaker": speaker,
            "tokens": list(range(50364, 50364 + 2 * WORDS_PER_SEGMENT)), "avg_logprob": -0.2134,
            "no_speech_prob": 0.0123, "temperature": 0.0, "compression_ratio": 1.42, "seek": int(clock * 100),
        })  # fmt: skip
        word_segments += words
        clock += 0.4 * WORDS_PER_SEGMENT + 0.5
    return {
        "segments": segments, "word_segments": word_segments, "language": "en", "duration": round(clock, 3),
        "task": "transcribe", "model": "base", "vad": "pyannote", "alignment": "whisper:base",
        "speakers": ["SPEAKER_00", "SPEAKER_01"],
    }  # fmt: skip


async def seed(settings: object, result: dict[str, object]) -> str:
    await asyncio.to_thread(upgrade_database, settings)
    config = make_db_config(settings, null_pool=True)  # type: ignore[arg-type]
    task = Task(
        id=uuid.uuid4(), status="completed", task_type="full_process", params={}, progress=1.0, attempts=1,
        file_name="four-hours.mp3", result=result,
    )  # fmt: skip
    async with config.get_session() as session:
        session.add(task)
        await session.commit()
    await config.get_engine().dispose()
    return str(task.id)


def _send_result(conn: Any, hours: float) -> None:
    """The inference process's side: a four-hour result, pickled through the pipe as it is sent."""
    from whisperx_api.pipeline.results import Transcript

    conn.send(("done", 1, msgspec.convert(long_result(hours), Transcript)))
    conn.recv()


async def _receive_and_write(hours: float, workdir: Path) -> dict[str, float]:
    from whisperx_api.memory import release_freed_memory
    from whisperx_api.transcription.rows import TaskRows

    settings = make_bench_settings(workdir, f"sqlite:///{workdir / 'records.db'}")
    await asyncio.to_thread(upgrade_database, settings)
    config = make_db_config(settings)
    rows = TaskRows(config, counted=lambda: None)
    task = await rows.insert(id=uuid.uuid4(), status="processing", task_type="full_process", params={}, file_name="f")
    await rows.update(task.id, progress=0.5)  # the progress writes before it: the connections, the statements
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    sender = context.Process(target=_send_result, args=(theirs, hours))
    sender.start()
    gc.collect()
    release_freed_memory()
    before = rss_mb(os.getpid(), "RssAnon")
    # unpickled on a thread of its own, as on the engine's reader thread
    result = (await asyncio.to_thread(ours.recv))[2]
    await rows.update(task.id, status="completed", result=result, progress=1.0, stage="done")
    del result
    gc.collect()
    written = rss_mb(os.getpid(), "RssAnon")
    await asyncio.to_thread(release_freed_memory)
    trimmed = rss_mb(os.getpid(), "RssAnon")
    ours.send("done")
    sender.join()
    await config.get_engine().dispose()
    return {"anon_before_mb": round(before, 1), "anon_rise_written_mb": round(written - before, 1),
            "anon_rise_trimmed_mb": round(trimmed - before, 1)}  # fmt: skip


def receive_and_write(code: Path, hours: float) -> dict[str, Any]:
    """The web process's side of a task's end, in a fresh process on `code`'s src."""
    env = os.environ | {"PYTHONPATH": str(code.resolve() / "src")}
    done = subprocess.run(
        [sys.executable, __file__, "--receive-here", "--hours", str(hours)], env=env, capture_output=True, text=True,
        check=True, timeout=600,
    )  # fmt: skip
    return {"code": str(code), **json.loads(done.stdout.splitlines()[-1])}


def memory_mb(pid: int) -> dict[str, float]:
    return {field: round(rss_mb(pid, field), 1) for field in ("VmRSS", "RssAnon")}


def web_process(server_pid: int) -> int:
    """The process that answers requests: the inference process's parent (granian's worker)."""
    for pid in descendants(server_pid):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"multiprocessing.spawn" in cmdline or b"spawn_main" in cmdline:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    raise RuntimeError("no inference process below the server")


def run_one(code: Path, result: dict[str, object], reads: int, workdir: Path) -> dict[str, object]:
    workdir.mkdir(parents=True)
    settings = make_bench_settings(workdir, f"sqlite:///{workdir / 'records.db'}")
    identifier = asyncio.run(seed(settings, result))
    env = settings_env(settings) | {"PYTHONPATH": str(code.resolve() / "src")}
    port = free_port()
    server = start_server(env, workdir / "server.log", port, timeout=120, worker_ready=True)
    try:
        web = web_process(server.proc.pid)
        time.sleep(REST_S)
        before = memory_mb(web)
        sizes, seconds = [], []
        for _ in range(reads):
            started = time.monotonic()
            response = httpx.get(f"http://127.0.0.1:{port}/task/{identifier}", timeout=120)
            seconds.append(round(time.monotonic() - started, 2))
            response.raise_for_status()
            sizes.append(len(response.content))
        time.sleep(REST_S)
        after = memory_mb(web)
    finally:
        server.stop()
        clear_queue(settings.queue_name)
    return {
        "code": str(code), "response_mb": round(sizes[0] / 2**20, 1), "read_s": seconds, "before": before,
        "after": after, "rss_rise_mb": round(after["VmRSS"] - before["VmRSS"], 1),
        "anon_rise_mb": round(after["RssAnon"] - before["RssAnon"], 1),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--reads", type=int, default=3)
    parser.add_argument("--code", type=Path, nargs="+", default=[Path(".")], help="checkouts whose src to serve")
    parser.add_argument("--receive-here", action="store_true", help=argparse.SUPPRESS)  # receive_and_write's process
    args = parser.parse_args()
    if args.receive_here:
        with tempfile.TemporaryDirectory() as workdir:
            print(json.dumps(asyncio.run(_receive_and_write(args.hours, Path(workdir)))))
        return
    writes = []
    for code in args.code:
        writes.append(receive_and_write(code, args.hours))
        print(json.dumps(writes[-1]), flush=True)
    result = long_result(args.hours)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, code in enumerate(args.code):
            rows.append(run_one(code, result, args.reads, Path(tmp) / str(index)))
            print(json.dumps(rows[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    report = {"date": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(), "args": vars(args) | {
        "code": [str(c) for c in args.code]}, "writes": writes, "rows": rows}  # fmt: skip
    (RESULTS / f"web_memory_{int(time.time())}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
