"""The queue job that runs a task, and this process's queue worker around it."""

from __future__ import annotations

import asyncio
from uuid import UUID

from saq.types import Context

from whisperx_api.jobs.queue import hold_startup_sweep
from whisperx_api.jobs.worker import WorkerRunner, make_worker
from whisperx_api.memory import freeze_long_lived, release_freed_memory
from whisperx_api.runtime import Runtime
from whisperx_api.transcription.service import TranscriptionService

# how often a running worker looks for tasks whose job was lost (a Redis that restarted, a
# worker that died without the sweep noticing): the service heals itself, not only at start
RECONCILE_EVERY_S = 120.0


class WorkerContext(Context, total=False):
    service: TranscriptionService


async def run_task(ctx: WorkerContext, *, task_id: str) -> str:
    status = (await ctx["service"].execute(UUID(task_id), job=ctx.get("job"))).status.value
    # The task's result crossed this process (unpickled on the engine's reader thread, encoded
    # for its row) and is dropped now. glibc keeps what that freed, having raised its trim
    # threshold for the large buffers: 27 MB after a four-hour result (measured), for good.
    await asyncio.to_thread(release_freed_memory)  # it locks each arena in turn: not on the event loop
    return status


def _warm_up(runtime: Runtime) -> None:
    # the inference process imports torch and the pipeline: seconds of work, done here in a
    # thread so the event loop keeps answering, and before the worker takes its first job
    runtime.engine.start()
    freeze_long_lived()


def worker_runner(service: TranscriptionService, *, in_process: bool) -> WorkerRunner:
    """A worker that starts once the inference process is up and unfinished tasks are
    reconciled (retried while Redis or the database do not answer); every few minutes it
    reconciles again and deletes media past MEDIA_RETENTION_H."""
    runtime = service.runtime
    settings = runtime.settings
    worker = make_worker(runtime.queue, run_task, {"service": service}, settings, in_process=in_process)

    async def prepare() -> None:
        await asyncio.to_thread(_warm_up, runtime)
        await hold_startup_sweep(runtime.queue, max(2, settings.job_heartbeat_s))
        await service.reconcile()
        await service.expire_media()

    async def maintain() -> None:
        await service.reconcile(at_start=False)
        await service.expire_media()

    return WorkerRunner(worker, prepare, maintain, RECONCILE_EVERY_S)


async def shut_down(transcription: TranscriptionService, worker: WorkerRunner | None, grace_s: float) -> None:
    """Stop taking work; a running task gets `grace_s` to finish, else it goes back on the queue
    (an inline one ends SERVICE_SHUTTING_DOWN). The inference process stops after this, when
    the process exits."""
    transcription.draining = True
    await asyncio.gather(transcription.drain_inline(grace_s), worker.stop() if worker is not None else asyncio.sleep(0))
