"""Reading tasks for /task: one task, or a page of summaries (the columns a list shows).

Core selects through the read engine (db/read_engine.py), not ORM sessions: a read needs no
identity map or unit of work, and skipping them doubled the reads a web process serves
(tests/bench/bench_tasks_api.py)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, Text, bindparam, cast, func, select, tuple_

from whisperx_api.db.models import Task
from whisperx_api.db.read_engine import ReadEngine
from whisperx_api.errors import ApiError
from whisperx_api.outages import unavailable
from whisperx_api.tasks.schemas import SUMMARY_COLUMNS

# one task's answer: the summary's columns and the rest GET /task/{id} shows, the JSON documents
# as their stored text (sent on as stored: decoding a long transcript only to encode it again
# was most of a read's work)
DETAIL_COLUMNS = (
    *SUMMARY_COLUMNS, Task.attempts, Task.callback_url, Task.media_path,
    cast(Task.params, Text).label("params"), cast(Task.result, Text).label("result"),
)  # fmt: skip


logger = logging.getLogger(__name__)

# the task list's `total` is counted again after this long even when no change was seen here
# (changes made by other processes: workers on other hosts, other web workers)
TOTAL_MAX_AGE_S = 1.0

# a page this near the list's top (or any after a cursor) is a bounded read for the read engine:
# an index walk of at most this many rows (1,000,000 tasks on SQLite: a page at offset 1,000 was
# answered as fast as the first, one at 10,000 took 2.3 ms more; bench_task_list.py, 2026-12-03)
SHALLOW_OFFSET = 1000

# built once: its compiled form is found in the cache by a key computed once, not per request
_ONE_TASK = select(*DETAIL_COLUMNS).where(Task.id == bindparam("task_id"))


def _page_query(*, by_status: bool, after_cursor: bool) -> Select[*tuple[Any, ...]]:
    # only the listed columns: results and parameters can be large and are not shown here
    query = select(*SUMMARY_COLUMNS)
    if by_status:
        query = query.where(Task.status == bindparam("status"))
    if after_cursor:  # rows after the cursor's, in (created_at desc, id desc) order
        # as one row-value comparison, which both databases seek in the (created_at, id) index;
        # written as `created_at < x OR (created_at = x AND id < y)` SQLite scanned from the top
        after = tuple_(
            bindparam("after_created_at", type_=Task.created_at.type), bindparam("after_id", type_=Task.id.type)
        )
        query = query.where(tuple_(Task.created_at, Task.id) < after)
    return query.order_by(Task.created_at.desc(), Task.id.desc()).limit(bindparam("limit")).offset(bindparam("offset"))


# the list's statements, built once for each (status filter?, cursor?): building a statement and
# its cache key per request cost more CPU than running it (~380 us of a page's ~1,100, 2026-12-03)
_PAGES = {
    (by_status, after_cursor): _page_query(by_status=by_status, after_cursor=after_cursor)
    for by_status in (False, True)
    for after_cursor in (False, True)
}
_COUNTS = {
    False: select(func.count()).select_from(Task),
    True: select(func.count()).select_from(Task).where(Task.status == bindparam("status")),
}


# a row of DETAIL_COLUMNS: attributes named as Task's, `params` and `result` as JSON text (the
# read engine's row type: SQLAlchemy's on SQLite, asyncpg's on PostgreSQL)
TaskRecord = Any


class Cursor:
    """Where a page of the task list ends: its last row's (created_at, id), the list's order.
    Opaque to clients (base64url of both)."""

    def __init__(self, created_at: datetime, task_id: UUID) -> None:
        self.created_at, self.task_id = created_at, task_id

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"{self.created_at.isoformat()}|{self.task_id}".encode()).decode()

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            created_at, _, task_id = base64.urlsafe_b64decode(text.encode()).decode().partition("|")
            return cls(datetime.fromisoformat(created_at), UUID(task_id))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ApiError(
                422, "cursor is not one this service gave (use next_cursor)", "INVALID_CURSOR", "cursor"
            ) from None


class TaskReader:
    def __init__(self, db: ReadEngine) -> None:
        self._db = db
        # how many tasks match each status filter (None: all), and when it was counted: a count
        # walks a whole index (a million tasks: tens of ms) while the page beside it reads 20 rows
        self._totals: dict[str | None, tuple[float, int]] = {}
        # the count in flight per filter, shared by every page that needs it, and the number of
        # forget_totals calls it began after. When every page that found no fresh count counted
        # for itself, a million tasks under 50 connections made a p99 of 0.9 s (2026-12-03)
        self._counting: dict[str | None, tuple[int, asyncio.Task[int]]] = {}
        self._forgotten = 0

    def forget_totals(self) -> None:
        """Tasks were added, removed or changed status here (transcription/rows.py calls it)."""
        self._totals.clear()
        self._forgotten += 1

    async def get(self, task_id: UUID) -> TaskRecord | None:
        """The task's DETAIL_COLUMNS (attributes named as Task's), or None."""
        (rows,) = await self._db.fetch((_ONE_TASK, {"task_id": task_id}), bounded=True)
        return rows[0] if rows else None

    async def page(
        self, *, limit: int, offset: int, status: str | None, after: Cursor | None = None
    ) -> tuple[Sequence[Any], int]:
        """Summary rows, newest first (after `after`, else from `offset`), and how many tasks match:
        counted at most once per TOTAL_MAX_AGE_S, at once after this process changed tasks; an old
        count answers while the new one runs."""
        params: dict[str, Any] = {"limit": limit, "offset": offset, "status": status}
        if after is not None:
            params.update(after_created_at=after.created_at, after_id=after.task_id)
        page = (_PAGES[status is not None, after is not None], params)
        bounded = after is not None or offset <= SHALLOW_OFFSET
        known = self._totals.get(status)
        if known is None:
            counting = self._count(status)
            (rows,) = await self._db.fetch(page, bounded=bounded)
            return rows, await asyncio.shield(counting)  # a page given up on does not end the count
        if time.monotonic() - known[0] >= TOTAL_MAX_AGE_S:
            self._count(status)  # in the background: this page answers with the last count
        (rows,) = await self._db.fetch(page, bounded=bounded)
        return rows, known[1]

    def _count(self, status: str | None) -> asyncio.Task[int]:
        """The count for the tasks as they are now: the one in flight, or a new one."""
        running = self._counting.get(status)
        if running is not None and running[0] == self._forgotten:
            return running[1]
        counting = asyncio.create_task(self._counted(status, self._forgotten))
        counting.add_done_callback(_report_failed_count)
        self._counting[status] = (self._forgotten, counting)
        return counting

    async def _counted(self, status: str | None, forgotten: int) -> int:
        try:
            ((counted,),) = await self._db.fetch((_COUNTS[status is not None], {"status": status}))
            if forgotten == self._forgotten:  # else tasks changed here meanwhile: not kept
                self._totals[status] = (time.monotonic(), int(counted[0]))
            return int(counted[0])
        finally:
            if self._counting.get(status, (None, None))[1] is asyncio.current_task():
                del self._counting[status]


def _report_failed_count(counting: asyncio.Task[int]) -> None:
    # a page waiting for the count meets its error itself; a count run in the background has
    # nobody to tell: an outage shows on the next page, anything else is a bug to log
    if not counting.cancelled() and (error := counting.exception()) is not None and unavailable(error) is None:
        logger.error("counting the task list's total failed", exc_info=error)
