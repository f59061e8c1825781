"""Real processes: a web server with no worker, a separate worker, restarts with queued jobs."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.audio import speak
from tests.support import (
    Process,
    clear_queue,
    descendants,
    free_port,
    make_settings,
    process_name,
    settings_env,
    start_server,
)

pytestmark = pytest.mark.slow


def _submit(base: str, clip: Path, n: int) -> list[str]:
    ids = []
    with httpx.Client(base_url=base, timeout=30) as http:
        for i in range(n):
            response = http.post("/service/probe", files={"file": (f"c{i}.wav", clip.read_bytes(), "audio/wav")})
            assert response.status_code == 200, response.text
            ids.append(response.json()["identifier"])
    return ids


def _statuses(base: str) -> dict[str, int]:
    with httpx.Client(base_url=base, timeout=30) as http:
        tasks = http.get("/task/all", params={"limit": 1000}).json()["tasks"]
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task["status"]] = counts.get(task["status"], 0) + 1
    return counts


async def _wait_all(base: str, total: int, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = _statuses(base)
        if counts.get("completed", 0) + counts.get("failed", 0) == total:
            return counts
        await asyncio.sleep(0.5)
    return counts


async def test_worker_only_process_picks_up_jobs_and_survives_restart_with_100_queued(
    tmp_path: Path, pg_database: str
) -> None:
    settings = make_settings(tmp_path / "data", pg_database)
    env = settings_env(settings)
    clip = speak("Queued jobs must all complete.", tmp_path / "q.wav")
    port = free_port()
    web = start_server({**env, "WORKER_IN_PROCESS": "false"}, tmp_path / "web.log", port)
    base = f"http://127.0.0.1:{port}"
    worker: Process | None = None
    try:
        ids = _submit(base, clip, 100)
        await asyncio.sleep(2)
        assert _statuses(base) == {"queued": 100}, "the web process must not run jobs"
        # a worker that starts with 100 jobs already queued (SAQ as shipped aborts one of them)
        worker = Process(["workers", "run"], env, tmp_path / "worker.log")
        counts = await _wait_all(base, 100, timeout=120)
        assert counts == {"completed": 100}, worker.log_text()[-3000:]
        with httpx.Client(base_url=base) as http:
            attempts = {http.get(f"/task/{i}").json()["metadata"]["attempts"] for i in ids[:10]}
        assert attempts == {1}
    finally:
        if worker is not None:
            worker.stop()
        web.stop()
        clear_queue(settings.queue_name)


async def test_restart_of_embedded_service_keeps_queued_jobs(tmp_path: Path) -> None:
    """Embedded Redis persists its queue: jobs queued by a server killed at once are done after restart."""
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'records.db'}", redis_url=None)
    env = settings_env(settings)
    env.pop("REDIS_URL")
    clip = speak("Persistence check.", tmp_path / "p.wav")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server({**env, "WORKER_IN_PROCESS": "false"}, tmp_path / "a.log", port)
    _submit(base, clip, 20)
    time.sleep(1.5)  # appendfsync everysec
    # a hard crash of the whole service: the server and its embedded redis-server
    redis_pid = int((settings.data_dir / "redis" / "redis.pid").read_text())
    server.kill()
    os.kill(redis_pid, signal.SIGKILL)
    server = start_server(env, tmp_path / "b.log", port)
    try:
        counts = await _wait_all(base, 20, timeout=60)
        assert counts == {"completed": 20}, server.log_text()[-3000:]
        inference = [p for p in descendants(server.proc.pid) if process_name(p) == "whisperx-infer"]
        assert len(inference) == 1  # one web process, one inference process
    finally:
        server.stop(ctrl_c=True)
    # a clean stop takes the inference process along, without calling its exit unexpected
    assert process_name(inference[0]) == ""
    assert "exited unexpectedly" not in server.log_text()
