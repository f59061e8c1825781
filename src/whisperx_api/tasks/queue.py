"""SAQ queue: enqueueing tasks, running a worker, and reconciling after a crash or restart.

The database is the source of truth; an SAQ job carries only the task id, under key = task id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from saq import Job, Status, Worker
from saq.queue.redis import RedisQueue
from saq.types import PartialTimersDict
from sqlalchemy import select, update

from whisperx_api.db.models import ACTIVE_STATUSES, Task, TaskStatus
from whisperx_api.runtime import Runtime
from whisperx_api.settings import Settings

if TYPE_CHECKING:
    from whisperx_api.tasks.jobs import WorkerContext

logger = logging.getLogger(__name__)

LIVE_JOB_STATUSES = {Status.NEW, Status.QUEUED, Status.ACTIVE, Status.ABORTING}
INTERRUPTED = "interrupted"


def job_options(settings: Settings) -> dict[str, object]:
    return {
        "timeout": settings.job_timeout_s,
        "heartbeat": settings.job_heartbeat_s,
        # SAQ re-runs a job whose worker died (found stuck by the sweep); run_task counts the
        # attempts in the database and gives up after job_max_attempts.
        "retries": settings.job_max_attempts,
        "ttl": 3600,
    }


async def enqueue_task(runtime: Runtime, task_id: UUID) -> Job | None:
    """Queue a committed task. Returns None when a live job for it already exists."""
    return await runtime.queue.enqueue(
        "run_task", key=str(task_id), task_id=str(task_id), **job_options(runtime.settings)
    )


async def reconcile_tasks(runtime: Runtime) -> dict[str, int]:
    """Re-queue (once more, within job_max_attempts) or fail tasks whose job is gone.

    A task left queued/processing after a crash either still has a live SAQ job (the sweep will
    retry it if its worker died) or has none (Redis lost it, or the job finished without
    updating the row): those are re-enqueued, or failed with error `interrupted` when they have
    used up their attempts.
    """
    counts = {"requeued": 0, "failed": 0, "alive": 0}
    async with runtime.db.get_session() as session:
        rows = (await session.execute(select(Task.id, Task.attempts).where(Task.status.in_(ACTIVE_STATUSES)))).all()
    for task_id, attempts in rows:
        job = await runtime.queue.job(str(task_id))
        if job is not None and job.status in LIVE_JOB_STATUSES:
            counts["alive"] += 1
            continue
        if job is not None:
            await runtime.queue.redis.delete(job.id)
        if attempts < runtime.settings.job_max_attempts:
            await mark_queued(runtime, task_id)
            await enqueue_task(runtime, task_id)
            counts["requeued"] += 1
        else:
            await fail_interrupted(runtime, task_id, attempts)
            counts["failed"] += 1
    if rows:
        logger.info("reconciled unfinished tasks: %s", counts)
    return counts


async def mark_queued(runtime: Runtime, task_id: UUID) -> None:
    async with runtime.db.get_session() as session:
        await session.execute(
            update(Task).where(Task.id == task_id).values(status=TaskStatus.QUEUED.value, stage="requeued")
        )
        await session.commit()


async def fail_interrupted(runtime: Runtime, task_id: UUID, attempts: int) -> None:
    async with runtime.db.get_session() as session:
        await session.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(
                status=TaskStatus.FAILED.value,
                error_code=INTERRUPTED,
                error_message=f"interrupted: the worker stopped or crashed during {attempts} attempt(s)",
                finished_at=datetime.now(UTC),
            )
        )
        await session.commit()


async def hold_startup_sweep(queue: RedisQueue, seconds: int) -> None:
    """Keep SAQ from sweeping while this worker starts.

    SAQ 0.26.4 sweeps at start and aborts a job it has just moved to its active list when jobs
    are already queued (saq issues 124, 277): taking the sweep lock first avoids that race.
    """
    await queue.redis.set(queue.namespace("sweep"), 1, ex=seconds)


def make_worker(runtime: Runtime, *, in_process: bool) -> Worker[WorkerContext]:
    from whisperx_api.tasks.jobs import run_task

    settings = runtime.settings
    worker: Worker[WorkerContext] = Worker(
        runtime.queue,
        functions=[("run_task", run_task)],
        concurrency=max(2, settings.max_concurrent_gpu_tasks * 2),
        timers=PartialTimersDict(sweep=max(2, settings.job_heartbeat_s), schedule=1, worker_info=10, abort=1),
        shutdown_grace_period_s=settings.worker_shutdown_grace_s,
        dequeue_timeout=1.0,
    )
    worker.context["runtime"] = runtime
    if in_process:
        # inside granian the server owns SIGINT/SIGTERM; the lifespan stops the worker
        worker.SIGNALS = []
    return worker


async def start_worker(runtime: Runtime, *, in_process: bool) -> asyncio.Task[None]:
    await hold_startup_sweep(runtime.queue, max(2, runtime.settings.job_heartbeat_s))
    await reconcile_tasks(runtime)
    worker = make_worker(runtime, in_process=in_process)
    runtime.worker = worker
    return asyncio.create_task(worker.start(), name="saq-worker")


async def stop_worker(runtime: Runtime, worker_task: asyncio.Task[None]) -> None:
    if runtime.worker is not None:
        await runtime.worker.stop()
    worker_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker_task
