"""SAQ's Redis queue with a sweep that does not re-run a job a worker has just dequeued, and the
few things done with it: enqueue a task, tell a live job from a dead one, forget a dead one.

A worker dequeues in two steps: BLMOVE moves the job id from the queued list to the active list,
then the worker marks the job active. A sweep that runs between the two sees an active-list job
whose status is still "queued", takes it for an orphan and re-queues it, so it runs twice. On a
busy event loop the gap between the two steps grows from microseconds to seconds. This sweep
gives such jobs a grace period and sweeps only those still unmarked after it: the ones whose
worker really died in between. Likewise a running job whose heartbeat lapsed while Redis was
down or restarting is swept only if its worker does not touch it again within a heartbeat.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

from saq import Job
from saq.job import Status
from saq.queue.redis import RedisQueue
from saq.utils import now, seconds

from whisperx_api.settings import Settings

logger = logging.getLogger(__name__)

# Take the sweep lock and read the active list with its jobs, atomically (as SAQ's own sweep does).
SNAPSHOT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {} end
redis.call('SETEX', KEYS[1], ARGV[1], 1)
local jobs = {}
for i, id in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
    jobs[i] = {id, redis.call('GET', id)}
end
return jobs
"""


class TaskQueue(RedisQueue):
    dequeue_grace_s = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._snapshot = self.redis.register_script(SNAPSHOT)

    async def sweep(self, lock: int = 60, abort: float = 5.0) -> list[str]:
        snapshot: list[tuple[bytes, bytes | None]] = await self._snapshot(
            keys=[self._sweep, self._active], args=[lock], client=self.redis
        )
        if not snapshot:
            return []
        jobs = {job_id: self.deserialize(raw) for job_id, raw in snapshot}
        unmarked = [job_id for job_id, job in jobs.items() if job is not None and job.status == Status.QUEUED]
        # an active job whose heartbeat lapsed may only have been cut off from Redis (an outage,
        # a restart) while its worker ran on: a live worker touches it again within a heartbeat
        # (one past its timeout is swept at once)
        lapsed = [job_id for job_id, job in jobs.items() if job is not None and _heartbeat_lapsed(job)]
        alive: set[bytes] = set()
        if unmarked or lapsed:
            heartbeats = [job.heartbeat for job_id, job in jobs.items() if job is not None and job_id in lapsed]
            await asyncio.sleep(max([self.dequeue_grace_s, *heartbeats]))
            waiting = [*unmarked, *lapsed]
            for job_id, raw in zip(waiting, await self.redis.mget(waiting), strict=True):
                before, now = jobs[job_id], self.deserialize(raw)
                if now is None or before is None:
                    continue
                if job_id in unmarked:
                    if now.status != Status.QUEUED:
                        alive.add(job_id)  # a worker had just dequeued it and has marked it since
                elif now.status != Status.ACTIVE or now.touched != before.touched:
                    alive.add(job_id)  # its worker is alive (touched it) or it has ended
        swept: list[bytes] = []
        for job_id, job in jobs.items():
            if job_id in alive:
                continue
            if job is None:
                swept.append(job_id)
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.lrem(self._active, 0, job_id.decode())
                    pipe.zrem(self._incomplete, job_id)
                    await pipe.execute()
                logger.info("Sweeping missing job %s", job_id)
                continue
            if job.status == Status.ACTIVE and not job.stuck:
                continue
            logger.info("Sweeping job %s", job.info(logger.isEnabledFor(logging.DEBUG)))
            swept.append(job_id)
            await self.abort(job, error=self.swept_error_message)
            try:
                await job.refresh(abort)
            except TimeoutError:
                logger.info("Could not abort job %s", job_id)
            if job.retryable:
                await self.retry(job, error=self.swept_error_message)
            else:
                await self.finish(job, Status.ABORTED, error=self.swept_error_message)
        return [job_id.decode() for job_id in swept]


def _heartbeat_lapsed(job: Job) -> bool:
    """Active, within its timeout, but not touched for longer than its heartbeat."""
    current = now()
    timed_out = bool(job.timeout) and seconds(current - job.started) > job.timeout
    return job.status == Status.ACTIVE and job.stuck and not timed_out


JOB_FUNCTION = "run_task"


def job_options(settings: Settings) -> dict[str, object]:
    return {
        "timeout": settings.job_timeout_s,
        "heartbeat": settings.job_heartbeat_s,
        # SAQ re-runs a job whose worker died (found stuck by the sweep); the task's attempts are
        # counted in its row and, past JOB_MAX_ATTEMPTS, it fails as `interrupted`. The one extra
        # SAQ run is what lets it record that instead of leaving it processing.
        "retries": settings.job_max_attempts + 1,
        "ttl": 3600,
    }


async def enqueue(queue: TaskQueue, task_id: UUID, settings: Settings) -> Job | None:
    """Queue a committed task. Returns None when a live job for it already exists."""
    return await queue.enqueue(JOB_FUNCTION, key=str(task_id), task_id=str(task_id), **job_options(settings))


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


async def hold_startup_sweep(queue: RedisQueue, seconds: int) -> None:
    """Keep SAQ from sweeping while a worker starts.

    SAQ 0.26.4 sweeps at start and aborts a job it has just moved to its active list when jobs
    are already queued (saq issues 124, 277): taking the sweep lock first avoids that race.
    """
    await queue.redis.set(queue.namespace("sweep"), 1, ex=seconds)
