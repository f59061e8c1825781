"""A task's changes as a stream of events, for GET /task/{id}/events (server-sent events).

The transcription service (the task's one owner) publishes each change of stage, progress and
status, each segment as the model decodes it, and the final state, into a Redis stream per task:
any process of the deployment can serve the events of a task that another process runs, and a
client that reconnects with `Last-Event-ID` gets what it missed (Redis stream ids are the event
ids). A process reads the streams of all the tasks its clients follow with one blocking XREAD
(`EventHub`), so a thousand followers hold one Redis connection, not a thousand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

import msgspec
from redis.asyncio import Redis

logger = logging.getLogger(__name__)

EventType = Literal["state", "segment", "done", "deleted"]
# the events of one task kept in Redis (a long recording's segments included), and how long
# they stay after the last one: a client may come back a while after a task ended
EVENTS_KEPT = 5000
EVENTS_KEPT_S = 24 * 3600
HUB_BLOCK_MS = 1000
HUB_RETRY_S = 1.0
EVENT_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


class SegmentEvent(msgspec.Struct, kw_only=True):
    start: float
    end: float
    text: str


class TaskEvent(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One change of a task. `type` is the SSE event name: `state` (stage/progress/status),
    `segment` (a decoded segment, before alignment and speakers), `done` (the final state: the
    result is at GET /task/{id}), `deleted`."""

    type: EventType
    status: str | None = None
    stage: str | None = None
    progress: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    segment: SegmentEvent | None = None

    @property
    def last(self) -> bool:
        """Nothing follows this event."""
        return self.type in ("done", "deleted")


def event_order(event_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = event_id.partition("-")
    return int(milliseconds), int(sequence or 0)


_decode = msgspec.json.Decoder(TaskEvent).decode


class TaskEvents:
    """Publishing a task's events, and following them (through this process's hub)."""

    def __init__(self, redis: Redis, namespace: str) -> None:
        self._redis = redis
        self._prefix = f"{namespace}:task-events:"
        self.hub = EventHub(redis)

    def key(self, task_id: UUID) -> str:
        return f"{self._prefix}{task_id}"

    async def publish(self, task_id: UUID, event: TaskEvent, *, keep_s: int = EVENTS_KEPT_S) -> str:
        key = self.key(task_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(key, {"e": msgspec.json.encode(event)}, maxlen=EVENTS_KEPT, approximate=True)
            pipe.expire(key, keep_s)
            event_id, _ = await pipe.execute()
        return event_id.decode() if isinstance(event_id, bytes) else str(event_id)

    async def last_id(self, task_id: UUID) -> str:
        """The id of the task's newest event ("0-0": none yet): following from here misses nothing after it."""
        newest = await self._redis.xrevrange(self.key(task_id), count=1)
        if not newest:
            return "0-0"
        event_id = newest[0][0]
        return event_id.decode() if isinstance(event_id, bytes) else str(event_id)

    def follow(self, task_id: UUID, after: str) -> contextlib.AbstractAsyncContextManager[Follower]:
        """Events of the task with ids after `after`, as they come."""
        return self.hub.follow(self.key(task_id), after)


@dataclass(eq=False)
class Follower:
    """One client following one task: its events arrive on `queue` in order, once each."""

    key: str
    after: str
    queue: asyncio.Queue[tuple[str, TaskEvent]] = field(default_factory=asyncio.Queue)

    async def next(self, wait_s: float) -> tuple[str, TaskEvent] | None:
        """The next event (id, event), or None when none came within `wait_s` seconds."""
        try:
            return await asyncio.wait_for(self.queue.get(), wait_s)
        except TimeoutError:
            return None


class EventHub:
    """One reader per process for the streams its followers watch: a blocking XREAD over all of
    them, from the oldest position any follower of each stream needs; each follower gets the
    entries after its own position. Runs while anyone follows; a Redis outage is retried (the
    followers see no events meanwhile, and nothing is skipped once it is back)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._followers: dict[str, set[Follower]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader

    @contextlib.asynccontextmanager
    async def follow(self, key: str, after: str) -> AsyncIterator[Follower]:
        follower = Follower(key, after)
        self._followers.setdefault(key, set()).add(follower)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(), name="task-events-hub")
        try:
            yield follower
        finally:
            watching = self._followers.get(key)
            if watching is not None:
                watching.discard(follower)
                if not watching:
                    del self._followers[key]

    async def _read(self) -> None:
        while self._followers:
            streams = {
                key: min((f.after for f in followers), key=event_order)
                for key, followers in self._followers.items()
            }  # fmt: skip
            try:
                found: Any = await self._redis.xread(streams, count=500, block=HUB_BLOCK_MS)  # type: ignore[arg-type]
            except Exception as exc:
                logger.debug("task events: Redis read failed (%s); retrying", exc)
                await asyncio.sleep(HUB_RETRY_S)
                continue
            for raw_key, entries in found or []:
                key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
                for raw_id, fields in entries:
                    event_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                    try:
                        event = _decode(fields[b"e"] if b"e" in fields else fields["e"])
                    except (KeyError, msgspec.DecodeError):
                        logger.warning("task events: unreadable entry %s in %s", event_id, key)
                        continue
                    order = event_order(event_id)
                    for follower in list(self._followers.get(key, ())):
                        if order > event_order(follower.after):
                            follower.after = event_id
                            follower.queue.put_nowait((event_id, event))
