"""Load and abuse run (loopback only, bounded in time): 500 concurrent clients hammer a protected
endpoint with the right token, a wrong one and none, far over the rate limit, for 30 s while a
transcription runs. Checks: the server stays up, /health stays under 100 ms, every response is a
documented status, no more requests pass the rate limit than its burst allows, the transcription
completes exactly once, memory stays bounded.

    uv run python tests/bench/abuse.py [--clients 500] [--seconds 30] [--worker in-process|process]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from multiprocessing import Process, Queue
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx

from tests.audio import concatenate, speak
from tests.bench.bench_long import peak_rss_mb
from tests.support import Process as Service
from tests.support import clear_queue, free_port, make_settings, settings_env, start_server

RESULTS = Path(__file__).parent / "results"
TOKEN = "abuse-run-token"
DOCUMENTED = {200, 401, 429}
BURST = 20


async def hammer(base: str, stop: float, headers: dict[str, str], counts: Counter[int | str]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers) as client:
        while time.monotonic() < stop:
            try:
                response = await client.get("/task/all", params={"limit": 5})
                counts[response.status_code] += 1
            except httpx.HTTPError as exc:
                counts[type(exc).__name__] += 1


Probes = tuple[list[tuple[float, float]], list[tuple[float, str]]]


def probe_health(base: str, seconds: float, out: Queue[Probes]) -> None:
    """In its own process, so the load generator's busy event loop does not colour the figures.
    Reports (seconds taken, seconds into the flood) per answered probe and every failed probe."""
    latencies, failures = [], []
    begin = time.monotonic()
    stop = begin + seconds
    with httpx.Client(base_url=base, timeout=30) as client:
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                response = client.get("/health")
            except httpx.HTTPError as exc:
                failures.append((round(time.monotonic() - begin, 1), repr(exc)))
                continue
            latencies.append((time.perf_counter() - started, time.monotonic() - begin))
            if response.status_code != 200:
                failures.append((round(time.monotonic() - begin, 1), f"status {response.status_code}"))
            time.sleep(0.1)
    out.put((latencies, failures))


async def patient_get(http: httpx.AsyncClient, path: str) -> dict[str, Any]:
    """GET that waits out the rate limit the run itself used up (as a well-behaved client does)."""
    while (response := await http.get(path)).status_code == 429:
        await asyncio.sleep(int(response.headers["retry-after"]))
    return response.json()


async def run(base: str, clients: int, seconds: int, clip: Path) -> dict[str, object]:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=auth) as http:
        submitted = await http.post(
            "/speech-to-text",
            files={"file": (clip.name, clip.read_bytes())},
            data={"model": "tiny.en", "language": "en"},
        )
        submitted.raise_for_status()
        identifier = submitted.json()["identifier"]
        # the flood starts once the transcription runs (a separate worker may still be starting)
        while (await patient_get(http, f"/task/{identifier}"))["status"] == "queued":
            await asyncio.sleep(0.2)
        stop = time.monotonic() + seconds
        counts: Counter[int | str] = Counter()
        kinds = [auth, {"Authorization": "Bearer wrong"}, {}]
        results: Queue[Probes] = Queue()
        prober = Process(target=probe_health, args=(base, seconds, results))
        prober.start()
        await asyncio.gather(*(hammer(base, stop, kinds[i % 3], counts) for i in range(clients)))
        probes, probe_failures = results.get(timeout=60)
        prober.join()
        while (task := await patient_get(http, f"/task/{identifier}"))["status"] not in ("completed", "failed"):
            await asyncio.sleep(1)
        listed = await patient_get(http, "/task/all")
    # (seconds into the flood, ms) of each probe over the 100 ms target: when they happen says why
    slow = [(round(at, 1), round(took * 1000)) for took, at in probes if took > 0.1]
    latencies = sorted(took for took, _ in probes)
    return {
        "responses": {str(k): v for k, v in sorted(counts.items(), key=str)},
        "undocumented": {str(k): v for k, v in counts.items() if k not in DOCUMENTED},
        # every caller here is 127.0.0.1, one budget: at most BURST per second can pass the limiter
        "passed_rate_limit": {"count": counts[200] + counts[401], "most_allowed": BURST * (seconds + 1)},
        "requests_per_s": round(sum(counts.values()) / seconds),
        "health_ms": {
            "p50": round(statistics.median(latencies) * 1000, 1),
            "p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
            "max": round(latencies[-1] * 1000, 1),
            "samples": len(latencies),
            "over_100ms_at_s": slow,
            "failed": probe_failures,
        },
        "transcription": {
            "status": task["status"],
            "attempts": task["metadata"]["attempts"],
            "error": task["error"],
            "tasks_listed": listed["total"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument(
        "--worker",
        choices=["in-process", "process"],
        default="in-process",
        help="run the transcription in the web process (the default deployment) or in `workers run`",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        line = speak("The service must stay up while it is being hammered by many clients at once.", root / "l.wav")
        clip = concatenate([line] * 30, root / "long.wav")
        settings = make_settings(root / "data", f"sqlite:///{root / 'records.db'}")
        env = {
            **settings_env(settings),
            "LOG_LEVEL": "WARNING",
            "AUTH__ENABLED": "true",
            "AUTH__BEARER_TOKEN": TOKEN,
            "RATE_LIMIT__ENABLED": "true",
            "RATE_LIMIT__REQUESTS_PER_MINUTE": "600",
            "RATE_LIMIT__BURST": str(BURST),
            "MAX_QUEUED_GPU_REQUESTS": "4",
            "MAX_UPLOAD_SIZE_MB": "50",
            "JOB_HEARTBEAT_S": "30",
            "WORKER_IN_PROCESS": str(args.worker == "in-process").lower(),
        }
        port = free_port()
        server = start_server(env, root / "server.log", port, worker_ready=args.worker == "in-process")
        worker = Service(["workers", "run"], env, root / "worker.log") if args.worker == "process" else None
        try:
            before = peak_rss_mb(server.proc.pid)
            row = asyncio.run(run(f"http://127.0.0.1:{port}", args.clients, args.seconds, clip))
            row["server_alive"] = server.proc.poll() is None
            row["peak_rss_mb"] = {"before": round(before), "after": round(peak_rss_mb(server.proc.pid))}
        finally:
            if worker is not None:
                worker.stop()
            server.stop()
            clear_queue(settings.queue_name)
    print(json.dumps(row, indent=2))
    RESULTS.mkdir(exist_ok=True)
    report = {"date": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(), "args": vars(args), **row}
    (RESULTS / f"abuse_{int(time.time())}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
