"""Throughput under many tasks: 20 one-minute tasks submitted at once vs the same 20 one after
another, with MAX_CONCURRENT_GPU_TASKS at its default (1) and at 2, in one run.

Each setting gets a fresh `whisperx-api run` (worker in the web process, pipeline in its inference
process) and one warm-up task, so model loading is not in either figure; the models loaded during
the measured tasks are counted from the server log (the model cache logs each load).
Each task is /service/transcribe (VAD and Whisper: the part that holds the GPU slot).

    uv run python tests/bench/bench_throughput.py [--tasks 20] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx

from tests.bench.bench_pipeline import make_clip
from tests.support import clear_queue, free_port, make_bench_settings, settings_env, start_server

RESULTS = Path(__file__).parent / "results"
FIELDS = {"model": "tiny.en", "language": "en"}
DEADLINE_S = 3600


def submit(http: httpx.Client, clip: Path) -> str:
    response = http.post("/service/transcribe", files={"file": (clip.name, clip.read_bytes())}, data=FIELDS)
    response.raise_for_status()
    return str(response.json()["identifier"])


def wait_all(http: httpx.Client, identifiers: list[str]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    pending = set(identifiers)
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} tasks not done after {DEADLINE_S}s"
        for identifier in list(pending):
            task = http.get(f"/task/{identifier}").json()
            if task["status"] in ("completed", "failed"):
                assert task["status"] == "completed", task
                pending.discard(identifier)
        time.sleep(0.5)


def loads(log: Path) -> int:
    return log.read_text(errors="replace").count("loaded model (")


def run_setting(concurrent_tasks: int, clip: Path, count: int, workdir: Path) -> dict[str, object]:
    workdir.mkdir(parents=True)
    settings = make_bench_settings(workdir / "data", f"sqlite:///{workdir / 'records.db'}")
    env = {**settings_env(settings), "LOG_LEVEL": "INFO", "MAX_CONCURRENT_GPU_TASKS": str(concurrent_tasks)}
    log = workdir / "server.log"
    port = free_port()
    server = start_server(env, log, port, timeout=300, worker_ready=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as http:
            wait_all(http, [submit(http, clip)])  # warm-up: every model of the pipeline loaded
            before = loads(log)
            started = time.perf_counter()
            for _ in range(count):
                wait_all(http, [submit(http, clip)])
            one_by_one = time.perf_counter() - started
            started = time.perf_counter()
            wait_all(http, [submit(http, clip) for _ in range(count)])
            at_once = time.perf_counter() - started
            reloaded = loads(log) - before
    finally:
        server.stop()
        clear_queue(settings.queue_name)
    row = {
        "max_concurrent_gpu_tasks": concurrent_tasks, "tasks": count, "one_by_one_s": round(one_by_one, 1),
        "at_once_s": round(at_once, 1), "ratio": round(at_once / one_by_one, 3), "model_loads": reloaded,
    }  # fmt: skip
    print(
        f"MAX_CONCURRENT_GPU_TASKS={concurrent_tasks}: {count} tasks one by one {one_by_one:7.1f} s, "
        f"at once {at_once:7.1f} s (ratio {at_once / one_by_one:.3f}), model loads during them {reloaded}",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = make_clip(root, args.seconds)
        for concurrent_tasks in (1, 2):
            rows.append(run_setting(concurrent_tasks, clip, args.tasks, root / f"c{concurrent_tasks}"))
    RESULTS.mkdir(exist_ok=True)
    report = {"date": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(), "args": vars(args), "rows": rows}
    (RESULTS / f"throughput_{int(time.time())}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
