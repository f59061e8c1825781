"""Memory of the web process while uploads stream in: a 10 MB and a 500 MB WAV to /service/probe.

One `whisperx-api run`; its web worker's resident memory is sampled every 20 ms from before the
first byte is sent until the answer, and the peak over the idle figure is printed per size. The
upload is sent from a file (httpx streams it), so the client's memory is not in the figure.

    uv run python tests/bench/bench_upload.py [--sizes-mb 10 500]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx
import psutil

from tests.support import clear_queue, descendants, free_port, make_settings, process_name, settings_env, start_server

RESULTS = Path(__file__).parent / "results"
BYTES_PER_SECOND = 32_000  # 16 kHz mono 16-bit


def make_wav(path: Path, megabytes: int) -> Path:
    seconds = megabytes * 1_000_000 / BYTES_PER_SECOND
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=frequency=220:sample_rate=16000:duration={seconds}",
         "-ac", "1", "-c:a", "pcm_s16le", str(path)],
        check=True, timeout=600,
    )  # fmt: skip
    return path


def web_worker(server_pid: int) -> psutil.Process:
    """The process that serves requests: granian's worker (not the inference process)."""
    for pid in descendants(server_pid):
        if process_name(pid) != "whisperx-infer" and psutil.Process(pid).children():
            return psutil.Process(pid)
    raise AssertionError("no web worker found")


def upload_peak(base: str, worker: psutil.Process, clip: Path) -> tuple[float, float, float]:
    """(idle MB, peak MB during the upload, seconds) of the web worker."""
    idle = worker.memory_info().rss / 1e6
    peak = idle
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, worker.memory_info().rss / 1e6)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    try:
        with clip.open("rb") as fh, httpx.Client(base_url=base, timeout=600) as http:
            response = http.post("/service/probe", files={"file": (clip.name, fh, "audio/wav")})
        assert response.status_code == 200, response.text
    finally:
        done.set()
        sampler.join()
    return idle, peak, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[10, 500])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clips = [make_wav(root / f"upload_{size}mb.wav", size) for size in args.sizes_mb]
        settings = make_settings(root / "data", f"sqlite:///{root / 'records.db'}")
        env = {**settings_env(settings), "LOG_LEVEL": "WARNING"}
        port = free_port()
        server = start_server(env, root / "server.log", port, timeout=300, worker_ready=True)
        try:
            worker = web_worker(server.proc.pid)
            for size, clip in zip(args.sizes_mb, clips, strict=True):
                idle, peak, seconds = upload_peak(f"http://127.0.0.1:{port}", worker, clip)
                rows.append({"size_mb": size, "idle_mb": round(idle, 1), "peak_mb": round(peak, 1),
                             "seconds": round(seconds, 2)})  # fmt: skip
                print(
                    f"{size:5d} MB upload: web worker {idle:7.1f} MB idle, peak {peak:7.1f} MB "
                    f"(+{peak - idle:.1f} MB), {seconds:.1f} s",
                    flush=True,
                )
        finally:
            server.stop()
            clear_queue(settings.queue_name)
    RESULTS.mkdir(exist_ok=True)
    report = {"date": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(), "rows": rows}
    (RESULTS / f"upload_{int(time.time())}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
