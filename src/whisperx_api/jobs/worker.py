"""Running a queue worker: started in the background once its preparation has succeeded (retried
with backoff while Redis or the database do not answer), stopped with a grace period for the job
it is running."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from saq import Worker
from saq.types import PartialTimersDict

from whisperx_api.jobs.queue import JOB_FUNCTION, TaskQueue
from whisperx_api.outages import unavailable
from whisperx_api.settings import Settings

logger = logging.getLogger(__name__)

WorkerState = Literal["starting", "running", "stopping", "stopped"]
FIRST_RETRY_S = 1.0
LONGEST_RETRY_S = 30.0


def make_worker(
    queue: TaskQueue, function: Callable[..., Awaitable[Any]], context: dict[str, Any], settings: Settings, *,
    in_process: bool,
) -> Worker[Any]:  # fmt: skip
    worker: Worker[Any] = Worker(
        queue,
        functions=[(JOB_FUNCTION, function)],
        # one job per compute slot: a job dequeued only to wait for the model would be cut by a
        # shutdown and run twice; queued in Redis it waits for any worker instead
        concurrency=settings.max_concurrent_gpu_tasks,
        timers=PartialTimersDict(sweep=max(2, settings.job_heartbeat_s), schedule=1, worker_info=10, abort=1),
        shutdown_grace_period_s=settings.shutdown_grace_s,
        dequeue_timeout=1.0,
    )
    worker.context.update(context)
    if in_process:
        # inside granian the server owns SIGINT/SIGTERM; the lifespan stops the worker
        worker.SIGNALS = []
    return worker


class WorkerRunner:
    """One worker's life: `prepare` (retried with backoff until it succeeds), then the worker,
    until `stop`. `state` and `since` say where it is, for readiness."""

    def __init__(
        self, worker: Worker[Any], prepare: Callable[[], Awaitable[None]],
        maintain: Callable[[], Awaitable[object]] | None = None, maintain_every_s: float = 60.0,
    ) -> None:  # fmt: skip
        self.worker = worker
        self._prepare = prepare
        self._maintain, self._maintain_every_s = maintain, maintain_every_s
        self._maintenance: asyncio.Task[None] | None = None
        self.state: WorkerState = "starting"
        self.since = time.monotonic()
        self.attempts = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="saq-worker")

    def _set(self, state: WorkerState) -> None:
        self.state, self.since = state, time.monotonic()

    async def _run(self) -> None:
        delay = FIRST_RETRY_S
        while True:
            self.attempts += 1
            try:
                await self._prepare()
                break
            except Exception as exc:
                down = unavailable(exc)
                if down is None:
                    raise
                logger.warning(
                    "the queue worker cannot start: %s is unavailable (%s); retrying in %.0fs", down, exc, delay
                )
            await asyncio.sleep(delay)
            delay = min(LONGEST_RETRY_S, delay * 2)
        self._set("running")
        if self._maintain is not None:
            self._maintenance = asyncio.create_task(self._maintenance_loop(), name="worker-maintenance")
        await self.worker.start()

    async def _maintenance_loop(self) -> None:
        assert self._maintain is not None
        while True:
            await asyncio.sleep(self._maintain_every_s)
            try:
                await self._maintain()
            except Exception as exc:  # a dependency down now: the next round tries again
                logger.warning("worker maintenance failed (%s: %s)", type(exc).__name__, exc)

    async def stop(self) -> None:
        """Stop taking jobs; the running job gets the worker's grace period, then is cancelled."""
        self._set("stopping")
        if self._maintenance is not None:
            self._maintenance.cancel()
        task = self._task
        if hasattr(self.worker, "event"):  # `event` exists once the worker has started
            if not self.worker.job_task_contexts:
                # SAQ waits the whole grace period even when idle; nothing to wait for here
                self.worker._shutdown_grace_period_s = 0
            await self.worker.stop()
        if task is not None:
            task.cancel()
            # A cancellation that lands in a library call during start-up can be swallowed there;
            # the start-up then goes on to start the worker, which would wait forever. Stop it too.
            while not (await asyncio.wait({task}, timeout=0.5))[0]:
                if hasattr(self.worker, "event"):
                    await self.worker.stop()
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await task
                except Exception:
                    logger.exception("the queue worker ended with an error")
        self._set("stopped")
