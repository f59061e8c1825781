"""Safeguards across two real web processes sharing one Redis and one PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.audio import speak
from tests.support import (
    Process,
    avoid_minute_edge,
    clear_queue,
    free_port,
    make_settings,
    settings_env,
    start_server,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def two_servers(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database: str
) -> Iterator[tuple[str, str, dict[str, str]]]:
    rpm = getattr(request, "param", 1000)
    settings = make_settings(tmp_path / "data", pg_database)
    env = {
        **settings_env(settings),
        "WORKER_IN_PROCESS": "false",
        "RATE_LIMIT__ENABLED": "true",
        "RATE_LIMIT__REQUESTS_PER_MINUTE": str(rpm),
        "RATE_LIMIT__BURST": "100",
        "MAX_QUEUED_GPU_REQUESTS": "2",
        "MAX_UPLOAD_SIZE_MB": "1",
        "REDIS_MAX_CONNECTIONS": "4",
    }
    ports = free_port(), free_port()
    servers: list[Process] = []
    try:
        servers = [start_server(env, tmp_path / f"web{i}.log", port) for i, port in enumerate(ports)]
        yield f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}", env
    finally:
        for server in servers:
            server.stop()
        clear_queue(settings.queue_name)


def test_two_processes_share_one_admission_cap(two_servers: tuple[str, str, dict[str, str]], tmp_path: Path) -> None:
    first, second, env = two_servers
    clip = speak("Shared limits.", tmp_path / "c.wav")
    # async share = 1 of MAX_QUEUED_GPU_REQUESTS=2: a job queued through one process fills it for both
    queued = httpx.post(f"{first}/service/probe", files={"file": ("c.wav", clip.read_bytes())})
    assert queued.status_code == 200, queued.text
    for base in (first, second):
        refused = httpx.post(f"{base}/service/probe", files={"file": ("c.wav", clip.read_bytes())})
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "SERVICE_OVERLOADED"
        assert refused.headers["retry-after"] == "10"
    # refused before its body is read, a large upload still gets the answer: the server reads
    # and drops the rest of the body (closing with unread data reset the connection: a ReadError)
    large = b"\0" * (8 * 1024 * 1024)
    for _ in range(3):
        refused = httpx.post(f"{second}/service/probe", files={"file": ("c.wav", large)}, timeout=60)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "SERVICE_OVERLOADED"
    # a worker process runs the job; the job's end (not the request's) frees the slot everywhere
    worker = Process(["workers", "run"], env, tmp_path / "worker.log")
    try:
        identifier = queued.json()["identifier"]
        deadline = time.monotonic() + 90
        while httpx.get(f"{first}/task/{identifier}").json()["status"] != "completed":
            assert time.monotonic() < deadline, worker.log_text()[-2000:]
            time.sleep(0.2)
        again = httpx.post(f"{second}/service/probe", files={"file": ("c.wav", clip.read_bytes())})
        assert again.status_code == 200, again.text
    finally:
        worker.stop()


@pytest.mark.parametrize("two_servers", [30], indirect=True)
async def test_two_processes_share_one_rate_budget(two_servers: tuple[str, str, dict[str, str]]) -> None:
    first, second, _ = two_servers
    avoid_minute_edge(margin_s=10)
    # 100 requests at once, 50 per process, each process with 4 Redis connections: every request
    # waits for a connection and is counted against the one budget; none slips past the limiter
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as client:
        responses = await asyncio.gather(*(client.get(f"{(first, second)[i % 2]}/task/all") for i in range(100)))
        assert Counter(r.status_code for r in responses) == {200: 30, 429: 70}
        assert (await client.get(f"{first}/health/ready")).status_code == 200  # probes stay open


def test_upload_cap_holds_for_chunked_bodies(two_servers: tuple[str, str, dict[str, str]]) -> None:
    first, _, _ = two_servers
    boundary = "capboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode()  # fmt: skip

    def chunked() -> Iterator[bytes]:
        yield head
        for _ in range(48):  # 3 MB, never announced in a Content-Length
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    response = httpx.post(f"{first}/service/probe", content=chunked(), headers=headers, timeout=30)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "REQUEST_TOO_LARGE"
    announced = httpx.post(f"{first}/service/probe", files={"file": ("big.wav", b"\0" * (2 * 1024 * 1024))})
    assert announced.status_code == 413
