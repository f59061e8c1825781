"""Health probes. They never touch the worker's threads, so they answer while models run."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import msgspec
from litestar import Controller, get
from sqlalchemy import text

from whisperx_api.errors import ApiError
from whisperx_api.jobs.worker import WorkerRunner
from whisperx_api.openapi import error_responses
from whisperx_api.redis_embedded import supervisor_state
from whisperx_api.runtime import Runtime
from whisperx_api.settings import Settings
from whisperx_api.transcription.service import TranscriptionService

CHECK_TIMEOUT_S = 2.0


class Health(msgspec.Struct):
    status: str


class Liveness(msgspec.Struct):
    status: str
    timestamp: datetime


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, str]
    # "starting" while the in-process worker loads the pipeline (for at most WORKER_START_TIMEOUT_S,
    # then "unavailable": not ready), "ok" once it takes jobs, "off" without one (WORKER_IN_PROCESS=false)
    worker: str


def worker_state(runner: WorkerRunner | None, settings: Settings) -> str:
    if runner is None:
        return "off"
    if runner.state == "running":
        return "ok"
    if runner.state == "starting" and time.monotonic() - runner.since <= settings.worker_start_timeout_s:
        return "starting"
    return "unavailable" if runner.state == "starting" else runner.state


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

    @get("/live", summary="Liveness probe (with timestamp); 503 once the embedded Redis could not be restarted",
         responses=error_responses(503))  # fmt: skip
    async def live(self, settings: Settings) -> Liveness:
        # the embedded Redis's supervisor (in this process, or the parent of granian's workers)
        supervised = supervisor_state(settings.data_dir / "redis")
        if supervised is not None and supervised[0] == "gave_up":
            raise ApiError(
                503, "not alive: the embedded Redis exited and could not be started again; restart the service",
                "EMBEDDED_REDIS_LOST", "redis",
            )  # fmt: skip
        return Liveness(status="ok", timestamp=datetime.now(UTC))

    @get("/ready", summary="Readiness probe: database and Redis reachable", responses=error_responses(503))
    async def ready(
        self, runtime: Runtime, transcription: TranscriptionService, worker: WorkerRunner | None
    ) -> Readiness:
        checks = {"database": _check_database(runtime), "redis": _check_redis(runtime)}
        outcomes = await asyncio.gather(
            *(asyncio.wait_for(c, CHECK_TIMEOUT_S) for c in checks.values()), return_exceptions=True
        )
        failed = {name: repr(o) for name, o in zip(checks, outcomes, strict=True) if isinstance(o, BaseException)}
        if failed:
            detail = "; ".join(f"{name}: {error}" for name, error in failed.items())
            raise ApiError(503, f"not ready: {detail}", "DEPENDENCY_UNAVAILABLE", ",".join(failed))
        if transcription.draining:
            raise ApiError(503, "not ready: shutting down", "SERVICE_SHUTTING_DOWN", headers={"Retry-After": "10"})
        state = worker_state(worker, runtime.settings)
        if state not in ("ok", "starting", "off"):
            raise ApiError(
                503, f"not ready: the queue worker is {state} (its start is retried while Redis or the database "
                "do not answer)", "WORKER_UNAVAILABLE", "worker",
            )  # fmt: skip
        return Readiness(status="ok", checks={name: "ok" for name in checks}, worker=state)
