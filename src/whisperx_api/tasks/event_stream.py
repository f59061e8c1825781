"""GET /task/{id}/events: a task's events as a server-sent-events stream.

The stream opens with the task's current state (unless the client resumes with Last-Event-ID:
then it gets the events it missed), follows the task's events (events.py) and ends with `done`
(or `deleted`). While nothing happens a comment keeps the connection open, and the task's row is
read: an event lost with a Redis restart cannot leave a client waiting for ever.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import msgspec
from litestar.response import ServerSentEventMessage

from whisperx_api.db.models import ACTIVE_STATUSES
from whisperx_api.errors import ApiError
from whisperx_api.tasks.events import EVENT_ID, TaskEvent, TaskEvents
from whisperx_api.tasks.reads import TaskReader

logger = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
EVENTS_DESCRIPTION = """\
A `text/event-stream` of the task's changes, for clients that show progress without polling.
Each event's `data` is JSON; its SSE `event` name is its `type`:

- `state`: `status`, `stage`, `progress` (0..1), and `error_code`/`error_message` once failed.
  The stream opens with one (the task's state now).
- `segment`: `segment` = `{start, end, text}`, each stretch of speech as the model decodes it
  (before word timing and speakers).
- `done`: the final `status` (`completed` or `failed`, with the error); the result is at
  `GET /task/{id}`. The stream ends after it.
- `deleted`: the task was deleted; the stream ends.

Every event has an `id`; reconnect with the `Last-Event-ID` header to get the events after it
(browsers' EventSource does this by itself; events are kept 24 hours). Comments (`: keep-alive`)
arrive every 15 s while nothing changes. With AUTH__ENABLED, send the bearer token
(EventSource cannot send headers: use fetch() and read the body, as the web page does).
"""


async def resume_point(events: TaskEvents, task_id: UUID, last_event_id: str | None) -> str:
    """Where the stream starts: after the client's last event, or after the newest one now
    (read before the task's row, so a change made in between is not missed)."""
    if last_event_id is None:
        return await events.last_id(task_id)
    value = last_event_id.strip()
    if not EVENT_ID.match(value):
        raise ApiError(
            400, "Last-Event-ID must be the id of an event of this stream (like 1764300000000-0)",
            "INVALID_EVENT_ID", "Last-Event-ID",
        )  # fmt: skip
    return value


def _state(task: Any, kind: str) -> TaskEvent:
    failed = task.status == "failed"
    return TaskEvent(
        type=kind,  # type: ignore[arg-type]
        status=task.status, stage=task.stage, progress=task.progress,
        error_code=task.error_code if failed else None, error_message=task.error_message if failed else None,
    )  # fmt: skip


def _message(event_id: str | None, event: TaskEvent) -> ServerSentEventMessage:
    return ServerSentEventMessage(data=msgspec.json.encode(event).decode(), event=event.type, id=event_id)


async def event_stream(
    tasks: TaskReader, events: TaskEvents, task: Any, after: str, *, resumed: bool
) -> AsyncIterator[ServerSentEventMessage]:
    if task.status not in ACTIVE_STATUSES:
        yield _message(after, _state(task, "done"))
        return
    if not resumed:
        yield _message(after, _state(task, "state"))
    async with events.follow(task.id, after) as follower:
        while True:
            arrived = await follower.next(KEEPALIVE_S)
            if arrived is not None:
                event_id, event = arrived
                yield _message(event_id, event)
                if event.last:
                    return
                continue
            try:
                row = await tasks.get(task.id)
            except Exception as exc:  # the database is down: the events may still come
                logger.debug("task %s: row not read for its event stream (%s)", task.id, exc)
                row = task
            if row is None:
                yield _message(None, TaskEvent(type="deleted"))
                return
            if row.status not in ACTIVE_STATUSES:
                yield _message(None, _state(row, "done"))
                return
            yield ServerSentEventMessage(data=None, comment="keep-alive")
