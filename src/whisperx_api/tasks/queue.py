"""SAQ queue: enqueueing tasks, running a worker, and reconciling after a crash or restart.

The database is the source of truth; an SAQ job carries only the task id, under key = task id.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from saq import Job, Status, Worker
from saq.queue.redis import RedisQueue
from saq.types import PartialTimersDict
from sqlalchemy import select

from whisperx_api.db.models import ACTIVE_STATUSES, Task, TaskStatus, TaskType
from whisperx_api.memory import freeze_long_lived
from whisperx_api.runtime import Runtime
from whisperx_api.settings import Settings
from whisperx_api.tasks.store import update_task

if TYPE_CHECKING:
    from whisperx_api.tasks.jobs import WorkerContext

logger = logging.getLogger(__name__)

INTERRUPTED = "interrupted"
SYNCHRONOUS_TYPES = (TaskType.OPENAI_TRANSCRIPTION.value, TaskType.OPENAI_TRANSLATION.value)
SYNC_STALE_AFTER_S = 3600


def job_options(settings: Settings) -> dict[str, object]:
    return {
        "timeout": settings.job_timeout_s,
        "heartbeat": settings.job_heartbeat_s,
        # SAQ re-runs a job whose worker died (found stuck by the sweep); run_task counts the
        # attempts in the database and, past job_max_attempts, marks the task `interrupted`.
        # The one extra SAQ run is what lets it record that instead of leaving it processing.
        "retries": settings.job_max_attempts + 1,
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
        rows = (
            await session.execute(
                select(Task.id, Task.attempts).where(
                    Task.status.in_(ACTIVE_STATUSES), Task.task_type.not_in(SYNCHRONOUS_TYPES)
                )
            )
        ).all()
        # a synchronous (/v1) request has no job; its client is gone once its process died
        stale = datetime.now(UTC) - timedelta(seconds=SYNC_STALE_AFTER_S)
        orphans = (
            await session.execute(
                select(Task.id, Task.attempts).where(
                    Task.status.in_(ACTIVE_STATUSES), Task.task_type.in_(SYNCHRONOUS_TYPES), Task.started_at < stale
                )
            )
        ).all()
    for task_id, attempts in orphans:
        await fail_interrupted(runtime, task_id, attempts)
        counts["failed"] += 1
    for task_id, attempts in rows:
        job = await runtime.queue.job(str(task_id))
        if job is not None and await job_is_live(runtime.queue, job):
            counts["alive"] += 1
            continue
        if job is not None:
            await forget_job(runtime.queue, job)
        if attempts < runtime.settings.job_max_attempts:
            await mark_queued(runtime, task_id)
            await enqueue_task(runtime, task_id)
            counts["requeued"] += 1
        else:
            await fail_interrupted(runtime, task_id, attempts)
            counts["failed"] += 1
    if rows or orphans:
        logger.info("reconciled unfinished tasks: %s", counts)
    return counts


async def job_is_live(queue: RedisQueue, job: Job) -> bool:
    """A job record alone is not enough: it must sit where a worker (or the sweep) will find it."""
    if job.status == Status.QUEUED:
        return (
            await queue.redis.lpos(queue.namespace("queued"), job.id) is not None
            or await queue.redis.zscore(queue.namespace("schedule"), job.id) is not None
        )
    if job.status in (Status.ACTIVE, Status.ABORTING):
        return await queue.redis.lpos(queue.namespace("active"), job.id) is not None
    return False


async def forget_job(queue: RedisQueue, job: Job) -> None:
    """Remove every trace of a dead job so its key can be enqueued again (SAQ refuses a key
    still listed as incomplete)."""
    async with queue.redis.pipeline(transaction=True) as pipe:
        pipe.delete(job.id, job.abort_id)
        pipe.zrem(queue.namespace("incomplete"), job.id)
        pipe.lrem(queue.namespace("queued"), 0, job.id)
        pipe.lrem(queue.namespace("active"), 0, job.id)
        await pipe.execute()


async def mark_queued(runtime: Runtime, task_id: UUID) -> None:
    await update_task(runtime, task_id, status=TaskStatus.QUEUED.value, stage="requeued")


async def fail_interrupted(runtime: Runtime, task_id: UUID, attempts: int) -> None:
    await update_task(
        runtime,
        task_id,
        status=TaskStatus.FAILED.value,
        error_code=INTERRUPTED,
        error_message=f"interrupted: the worker stopped or crashed during {attempts} attempt(s)",
        finished_at=datetime.now(UTC),
    )
    await runtime.admission.release("async", str(task_id))


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


def _load_pipeline_code(runtime: Runtime) -> None:
    # imports take seconds of GIL-bound work: done here, in a thread, they never stall the
    # event loop (health probes, job heartbeats) during a first task
    import whisperx_api.tasks.handlers  # noqa: F401

    runtime.engine.start()  # the inference process, ready when the worker takes its first job
    freeze_long_lived()


async def start_worker(runtime: Runtime, *, in_process: bool) -> asyncio.Task[None]:
    """Start the worker in the background: the server answers (health, uploads) while the
    pipeline code loads, and queued jobs are picked up once it has."""
    worker = make_worker(runtime, in_process=in_process)
    runtime.worker = worker

    async def run() -> None:
        await asyncio.to_thread(_load_pipeline_code, runtime)
        await hold_startup_sweep(runtime.queue, max(2, runtime.settings.job_heartbeat_s))
        try:
            await reconcile_tasks(runtime)
        except Exception:
            # a database that is down now must not keep the worker from starting; the next
            # start reconciles again, and live jobs are protected by heartbeats meanwhile
            logger.exception("could not reconcile unfinished tasks at start-up")
        runtime.worker_started = True
        await worker.start()

    return asyncio.create_task(run(), name="saq-worker")


async def stop_worker(runtime: Runtime, worker_task: asyncio.Task[None]) -> None:
    worker = runtime.worker
    if worker is not None and hasattr(worker, "event"):  # `event` exists once started
        if not worker.job_task_contexts:
            # SAQ waits the whole grace period even when idle; nothing to wait for here
            worker._shutdown_grace_period_s = 0
        await worker.stop()
    worker_task.cancel()
    # A cancellation that lands in a library call during start-up can be swallowed there; the
    # start-up then goes on to start the worker, which would wait forever. Stop that worker too.
    while not (await asyncio.wait({worker_task}, timeout=0.5))[0]:
        if worker is not None and hasattr(worker, "event"):
            await worker.stop()
        worker_task.cancel()
    try:
        await worker_task
    except asyncio.CancelledError:
        pass
    except Exception:
        logger.exception("the queue worker ended with an error")
