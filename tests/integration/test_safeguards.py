"""Safeguards in one process (each on and off): rate limit, admission control, upload cap."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from tests.audio import speak
from tests.support import avoid_minute_edge, clear_queue, make_settings
from whisperx_api.app import create_app
from whisperx_api.security.admission import split
from whisperx_api.security.callers import client_ip
from whisperx_api.security.outbound import parse_networks


async def _client(tmp_path: Path, **overrides: Any) -> AsyncIterator[AsyncTestClient]:
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'r.db'}", worker_in_process=False, **overrides)
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client
    clear_queue(settings.queue_name)


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return speak("Safeguards hold.", tmp_path / "c.wav")


async def test_rate_limit_per_minute(tmp_path: Path) -> None:
    async for client in _client(tmp_path, rate_limit={"enabled": True, "requests_per_minute": 5, "burst": 100}):
        avoid_minute_edge()
        remaining = []
        for _ in range(5):
            response = await client.get("/task/all")
            assert response.status_code == 200
            remaining.append(int(response.headers["ratelimit-remaining"]))
        assert remaining == [4, 3, 2, 1, 0]
        refused = await client.get("/task/all")
        assert refused.status_code == 429
        body = refused.json()["error"]
        assert body["type"] == "rate_limit_error" and body["code"] == "RATE_LIMIT_EXCEEDED"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["ratelimit-limit"] == "5"
        assert (await client.get("/health")).status_code == 200  # probes are never limited


async def test_rate_limit_burst_per_second(tmp_path: Path) -> None:
    async for client in _client(tmp_path, rate_limit={"enabled": True, "requests_per_minute": 1000, "burst": 2}):
        statuses = [(await client.get("/task/all")) for _ in range(6)]
        refused = [r for r in statuses if r.status_code == 429]
        assert refused and all(r.headers["retry-after"] == "1" for r in refused)


async def test_rate_limit_by_bearer_token(tmp_path: Path) -> None:
    limits = {"enabled": True, "requests_per_minute": 2, "burst": 100, "key_strategy": "bearer_token"}
    async for client in _client(tmp_path, rate_limit=limits):
        avoid_minute_edge()
        first = {"Authorization": "Bearer alice"}
        second = {"Authorization": "Bearer bob"}
        assert [(await client.get("/task/all", headers=first)).status_code for _ in range(3)] == [200, 200, 429]
        assert (await client.get("/task/all", headers=second)).status_code == 200


async def test_rate_limit_lets_requests_through_when_redis_is_down(tmp_path: Path) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    limiter_log = logging.getLogger("whisperx_api.security.rate_limit")
    async for client in _client(tmp_path, rate_limit={"enabled": True, "requests_per_minute": 1, "burst": 1}):
        runtime = client.app.state.runtime
        working = runtime.queue.redis
        runtime.queue.redis = Redis.from_url("redis://127.0.0.1:1")  # nothing listens on port 1
        limiter_log.addHandler(handler)
        try:
            assert [(await client.get("/task/all")).status_code for _ in range(5)] == [200] * 5
        finally:
            limiter_log.removeHandler(handler)
            await runtime.queue.redis.aclose()
            runtime.queue.redis = working
    # one warning for the lot, not a traceback per request
    assert [r.getMessage().split(":")[0] for r in records] == ["rate limit skipped for 1 request(s)"]


async def test_safeguards_are_off_by_default(tmp_path: Path, clip: Path) -> None:
    async for client in _client(tmp_path):
        responses = [await client.get("/task/all") for _ in range(30)]
        assert all(r.status_code == 200 and "ratelimit-limit" not in r.headers for r in responses)
        for _ in range(3):
            with clip.open("rb") as fh:
                assert (await client.post("/service/probe", files={"file": ("c.wav", fh)})).status_code == 200


def test_forwarded_for_is_trusted_only_from_configured_proxies() -> None:
    proxies = parse_networks(["10.0.0.0/8"])
    scope: Any = {"client": ("10.1.1.1", 1), "headers": [(b"x-forwarded-for", b"203.0.113.9, 10.2.2.2")]}
    assert client_ip(scope, proxies) == "203.0.113.9"
    scope["client"] = ("198.51.100.7", 1)  # not a proxy: its header is ignored
    assert client_ip(scope, proxies) == "198.51.100.7"
    assert client_ip(scope, ()) == "198.51.100.7"


def test_quota_split_follows_the_seed() -> None:
    assert split(0, 0.5) == {}
    assert split(1, 0.5) == {"sync": 1, "async": 1}
    assert split(2, 0.5) == {"sync": 1, "async": 1}
    assert split(20, 0.5) == {"sync": 10, "async": 10}
    assert split(10, 0.0) == {"sync": 1, "async": 9}
    assert split(10, 1.0) == {"sync": 9, "async": 1}
    assert split(7, 0.3) == {"sync": 2, "async": 5}


async def test_admission_holds_async_slots_until_the_job_ends(tmp_path: Path, clip: Path) -> None:
    async for client in _client(tmp_path, max_queued_gpu_requests=2):
        with clip.open("rb") as fh:
            first = await client.post("/service/probe", files={"file": ("c.wav", fh)})
        assert first.status_code == 200
        with clip.open("rb") as fh:
            refused = await client.post("/service/probe", files={"file": ("c.wav", fh)})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "SERVICE_OVERLOADED" and refused.headers["retry-after"] == "10"
        assert (await client.get("/task/all")).json()["total"] == 1  # nothing was queued for the refused one
        # the job is still queued (no worker here): deleting the task frees its slot
        await client.delete(f"/task/{first.json()['identifier']}")
        with clip.open("rb") as fh:
            assert (await client.post("/service/probe", files={"file": ("c.wav", fh)})).status_code == 200
