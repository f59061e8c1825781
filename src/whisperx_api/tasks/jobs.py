"""The SAQ job that runs one task: status, attempts, progress, result, cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from saq import Job
from saq.types import Context

from whisperx_api.db.models import ACTIVE_STATUSES, TaskStatus
from whisperx_api.pipeline.errors import PipelineError
from whisperx_api.pipeline.progress import Progress
from whisperx_api.runtime import Runtime
from whisperx_api.tasks.queue import fail_interrupted
from whisperx_api.tasks.store import find_task, update_task

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 1.0


class WorkerContext(Context, total=False):
    runtime: Runtime


@dataclass
class JobContext:
    """What a task handler gets: the task's inputs, settings and a thread-safe progress callback."""

    task_id: UUID
    task_type: str
    params: dict[str, Any]
    media_path: Path | None
    runtime: Runtime
    progress: Progress


async def _report_progress(
    runtime: Runtime, task_id: UUID, progress: Progress, job: Job | None, stop: asyncio.Event
) -> None:
    """Copy progress to the task row and keep the SAQ job's heartbeat fresh while threads work.

    It is stopped with `stop`, never cancelled: cancelling it in the middle of a database or
    Redis write can leave that connection unusable for the writes that follow.
    """
    seen = 0
    last_touch = time.monotonic()
    touch_every = max(0.5, runtime.settings.job_heartbeat_s / 3)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PROGRESS_INTERVAL_S)
        if stop.is_set():
            return
        version, stage, fraction = progress.snapshot()
        if version != seen:
            seen = version
            await update_task(runtime, task_id, stage=stage, progress=round(fraction, 4))
        if job is not None and time.monotonic() - last_touch >= touch_every:
            last_touch = time.monotonic()
            await job.update(progress=fraction)


async def run_task(ctx: WorkerContext, *, task_id: str) -> str:
    runtime = ctx["runtime"]
    job = ctx.get("job")
    tid = UUID(task_id)
    task = await find_task(runtime, tid)
    if task is None or task.status not in ACTIVE_STATUSES:
        await runtime.admission.release("async", task_id)
        return "skipped"  # deleted, or already finished by an earlier attempt
    attempts = task.attempts + 1
    if attempts > runtime.settings.job_max_attempts:
        await fail_interrupted(runtime, tid, task.attempts)
        return "interrupted"

    from whisperx_api.tasks.handlers import HANDLERS

    started = time.monotonic()
    await update_task(
        runtime,
        tid,
        status=TaskStatus.PROCESSING.value,
        attempts=attempts,
        started_at=datetime.now(UTC),
        stage="starting",
        progress=0.0,
    )
    progress = Progress()
    stop_reporting = asyncio.Event()
    reporter = asyncio.create_task(_report_progress(runtime, tid, progress, job, stop_reporting))
    context = JobContext(
        task_id=tid,
        task_type=task.task_type,
        params=task.params or {},
        media_path=Path(task.media_path) if task.media_path else None,
        runtime=runtime,
        progress=progress,
    )
    final: dict[str, Any]
    try:
        handler = HANDLERS[task.task_type]
        result = await handler(context)
        final = {"status": TaskStatus.COMPLETED.value, "result": result, "progress": 1.0, "stage": "done"}
        if isinstance(result, dict):
            final["language"] = result.get("language") or task.language
            final["audio_duration"] = result.get("duration") or task.audio_duration
    except asyncio.CancelledError:
        # worker shutdown or SAQ timeout: SAQ re-queues the job; the row goes back to queued
        stop_reporting.set()
        with contextlib.suppress(Exception):
            await asyncio.shield(update_task(runtime, tid, status=TaskStatus.QUEUED.value, stage="requeued"))
        raise
    except PipelineError as exc:
        final = {"status": TaskStatus.FAILED.value, "error_message": exc.message, "error_code": exc.code}
    except Exception as exc:
        logger.exception("task %s failed", tid)
        final = {
            "status": TaskStatus.FAILED.value,
            "error_message": str(exc) or type(exc).__name__,
            "error_code": "INTERNAL_ERROR",
        }
    finally:
        stop_reporting.set()
        with contextlib.suppress(Exception):
            await reporter
    await update_task(
        runtime,
        tid,
        **final,
        finished_at=datetime.now(UTC),
        processing_duration=round(time.monotonic() - started, 3),
    )
    if not runtime.settings.keep_media and context.media_path is not None:
        runtime.media.delete(context.media_path)
    await runtime.admission.release("async", task_id)
    from whisperx_api.tasks.callbacks import deliver_callback

    await deliver_callback(runtime, tid)
    return final["status"]
