"""The queue's sweep against real Redis: a job caught between a worker's dequeue and its
"active" mark is left alone; one whose worker died in that gap is swept and re-queued."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from saq import Job
from saq.job import Status

from tests.support import REDIS_URL, clear_queue
from whisperx_api.jobs.queue import TaskQueue


@pytest.fixture
async def queue() -> AsyncIterator[TaskQueue]:
    name = f"test-{uuid.uuid4().hex[:12]}"
    queue = TaskQueue(Redis.from_url(REDIS_URL), name=name)
    queue.dequeue_grace_s = 1.0
    await queue.connect()
    try:
        yield queue
    finally:
        await queue.disconnect()
        clear_queue(name)


async def half_dequeued(queue: TaskQueue) -> Job:
    """Enqueue a job and do the first half of a worker's dequeue: move it to the active list."""
    job = await queue.enqueue(Job("run_task", kwargs={"task_id": "x"}, key=str(uuid.uuid4()), retries=2))
    assert job is not None
    moved = await queue.redis.blmove(queue._queued, queue._active, 1, "LEFT", "RIGHT")
    assert moved == job.id.encode()
    return job


async def test_a_job_marked_active_within_the_grace_is_not_swept(queue: TaskQueue) -> None:
    job = await half_dequeued(queue)

    async def worker_marks_it_late() -> None:
        await asyncio.sleep(0.3)  # a busy event loop between BLMOVE and the status update
        job.attempts += 1
        await job.update(status=Status.ACTIVE)

    swept, _ = await asyncio.gather(queue.sweep(), worker_marks_it_late())
    assert swept == []
    await job.refresh()
    assert job.status == Status.ACTIVE and job.attempts == 1
    assert await queue.redis.lrange(queue._queued, 0, -1) == []


async def test_a_job_whose_worker_died_after_dequeue_is_swept_and_requeued(queue: TaskQueue) -> None:
    job = await half_dequeued(queue)
    swept = await queue.sweep()
    assert swept == [job.id]
    await job.refresh()
    assert job.status == Status.QUEUED
    assert await queue.redis.lrange(queue._queued, 0, -1) == [job.id.encode()]
    assert await queue.redis.lrange(queue._active, 0, -1) == []


async def test_stuck_and_missing_jobs_are_still_swept(queue: TaskQueue) -> None:
    job = await half_dequeued(queue)
    job.attempts += 1
    job.started, job.timeout = 1, 1  # started long ago, past its timeout: its worker is gone
    await job.update(status=Status.ACTIVE)
    await queue.redis.rpush(queue._active, b"saq:job:missing")
    swept = await queue.sweep(abort=0.2)
    assert sorted(swept) == sorted([job.id, "saq:job:missing"])
    await job.refresh()
    assert job.status == Status.QUEUED
