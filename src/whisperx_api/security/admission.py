"""Admission control (MAX_QUEUED_GPU_REQUESTS, SYNC_GPU_QUOTA_FRACTION), counted in Redis so the
cap holds for the whole deployment.

The seed's split: the synchronous /v1/audio/* path gets round(total * fraction) slots and the
asynchronous path the rest, each keeping at least one; a total of 1 admits one per path.
An async request holds its slot until its job finishes (not only until the request returns), so
the cap bounds the work in flight, not just the upload phase. Slots are members of a Redis sorted
set scored by an expiry time, so a slot whose holder died frees itself instead of leaking.
"""

from __future__ import annotations

import time
from typing import Literal

from litestar.types import ASGIApp, Receive, Scope, Send
from redis.asyncio import Redis

from whisperx_api.errors import DEPENDENCY_RETRY_AFTER_S, ApiError
from whisperx_api.outages import unavailable
from whisperx_api.security.responses import refuse

Path = Literal["sync", "async"]
RETRY_AFTER_S = 10


def overloaded(path: Path) -> ApiError:
    """A request refused because its path is at the cap (here at the gate, or at submit)."""
    return ApiError(
        503, f"the service is at its limit of in-flight {path} transcription requests; retry later",
        "SERVICE_OVERLOADED", headers={"Retry-After": str(RETRY_AFTER_S)},
    )  # fmt: skip


def dependency_error(exc: BaseException) -> ApiError | None:
    """A request refused before anything of it was kept because `exc` says Redis or the database
    is down (None for any other error)."""
    down = unavailable(exc)
    if down is None:
        return None
    return ApiError(
        503, f"{down} is unavailable; nothing was kept of this request, retry later", "DEPENDENCY_UNAVAILABLE", down,
        headers={"Retry-After": str(DEPENDENCY_RETRY_AFTER_S)},
    )  # fmt: skip


ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
return 1
"""


def split(total: int, fraction: float) -> dict[Path, int]:
    if total <= 0:
        return {}
    if total == 1:
        return {"sync": 1, "async": 1}
    sync = min(total - 1, max(1, round(total * fraction)))
    return {"sync": sync, "async": total - sync}


class Admission:
    def __init__(self, redis: Redis, namespace: str, total: int, fraction: float, hold_s: float) -> None:
        self.redis = redis
        self.namespace = namespace
        self.limits = split(total, fraction)
        self.hold_s = hold_s

    @property
    def enabled(self) -> bool:
        return bool(self.limits)

    def _key(self, path: Path) -> str:
        return f"{self.namespace}:admission:{path}"

    async def has_room(self, path: Path) -> bool:
        """Cheap check before a request body is read (the real claim is `acquire`)."""
        if not self.enabled:
            return True
        key = self._key(path)
        await self.redis.zremrangebyscore(key, "-inf", time.time())
        return int(await self.redis.zcard(key)) < self.limits[path]

    async def acquire(self, path: Path, holder: str) -> bool:
        if not self.enabled:
            return True
        now = time.time()
        granted = await self.redis.eval(ACQUIRE, 1, self._key(path), now, self.limits[path], holder, now + self.hold_s)
        return bool(granted)

    async def release(self, path: Path, holder: str) -> None:
        if self.enabled:
            await self.redis.zrem(self._key(path), holder)


ASYNC_PREFIXES = ("/speech-to-text", "/service/")
# enrolment runs the speaker encoder within the request, like /v1/audio/*
SYNC_PREFIXES = ("/v1/audio/", "/speakers/enroll")


def admission_gate(app: ASGIApp) -> ASGIApp:
    """Refuse a transcription request whose path is full before its body is read."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST":
            path: Path | None = (
                "sync" if scope["path"].startswith(SYNC_PREFIXES)
                else "async" if scope["path"].startswith(ASYNC_PREFIXES) else None
            )  # fmt: skip
            admission: Admission = scope["app"].state.runtime.admission
            try:
                room = path is None or await admission.has_room(path)
            except Exception as exc:
                error = dependency_error(exc)
                if error is None:
                    raise
                await refuse(receive, send, error)
                return
            if not room:
                assert path is not None  # a request on no path always has room
                await refuse(receive, send, overloaded(path))
                return
        await app(scope, receive, send)

    return middleware
