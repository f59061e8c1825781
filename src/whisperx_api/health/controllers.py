"""Health probes. They never touch the worker's threads, so they answer while models run."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import msgspec
from litestar import Controller, get
from sqlalchemy import text

from whisperx_api.errors import ApiError
from whisperx_api.openapi import error_responses
from whisperx_api.runtime import Runtime

CHECK_TIMEOUT_S = 2.0


class Health(msgspec.Struct):
    status: str


class Liveness(msgspec.Struct):
    status: str
    timestamp: datetime


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, str]
    # informational: "starting" while the in-process worker loads the pipeline, "off" without one
    worker: str


async def _check_database(runtime: Runtime) -> None:
    async with runtime.db.get_session() as session:
        await session.execute(text("SELECT 1"))


async def _check_redis(runtime: Runtime) -> None:
    await runtime.queue.redis.ping()


class HealthController(Controller):
    path = "/health"
    tags = ["Health"]

    @get("/", summary="Basic health check")
    async def health(self) -> Health:
        return Health(status="ok")

    @get("/live", summary="Liveness probe (with timestamp)")
    async def live(self) -> Liveness:
        return Liveness(status="ok", timestamp=datetime.now(UTC))

    @get("/ready", summary="Readiness probe: database and Redis reachable", responses=error_responses(503))
    async def ready(self, runtime: Runtime) -> Readiness:
        checks = {"database": _check_database(runtime), "redis": _check_redis(runtime)}
        outcomes = await asyncio.gather(
            *(asyncio.wait_for(c, CHECK_TIMEOUT_S) for c in checks.values()), return_exceptions=True
        )
        failed = {name: repr(o) for name, o in zip(checks, outcomes, strict=True) if isinstance(o, BaseException)}
        if failed:
            detail = "; ".join(f"{name}: {error}" for name, error in failed.items())
            raise ApiError(503, f"not ready: {detail}", "DEPENDENCY_UNAVAILABLE", ",".join(failed))
        worker = "off" if runtime.worker is None else ("ok" if runtime.worker_started else "starting")
        return Readiness(status="ok", checks={name: "ok" for name in checks}, worker=worker)
