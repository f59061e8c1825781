"""Reading tasks for /task: one task, or a page of summaries (the columns a list shows)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from sqlalchemy import and_, func, or_, select

from whisperx_api.db.models import Task
from whisperx_api.errors import ApiError
from whisperx_api.tasks.schemas import SUMMARY_COLUMNS


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
    def __init__(self, db: SQLAlchemyAsyncConfig) -> None:
        self._db = db

    async def get(self, task_id: UUID) -> Task | None:
        async with self._db.get_session() as session:
            return (await session.execute(select(Task).where(Task.id == task_id))).scalar_one_or_none()

    async def page(
        self, *, limit: int, offset: int, status: str | None, after: Cursor | None = None
    ) -> tuple[Sequence[Any], int]:
        """Summary rows, newest first (after `after`, else from `offset`), and how many tasks match."""
        # only the listed columns: results and parameters can be large and are not shown here
        query = select(*SUMMARY_COLUMNS)
        count = select(func.count()).select_from(Task)
        if status is not None:
            query = query.where(Task.status == status)
            count = count.where(Task.status == status)
        if after is not None:  # rows after the cursor's, in (created_at desc, id desc) order
            query = query.where(
                or_(
                    Task.created_at < after.created_at,
                    and_(Task.created_at == after.created_at, Task.id < after.task_id),
                )
            )
        query = query.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit).offset(offset)
        async with self._db.get_session() as session:
            rows = (await session.execute(query)).all()
            total = (await session.execute(count)).scalar_one()
        return rows, int(total)
