"""Reading tasks for /task: one task, or a page of summaries (the columns a list shows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from sqlalchemy import func, select

from whisperx_api.db.models import Task
from whisperx_api.tasks.schemas import SUMMARY_COLUMNS


class TaskReader:
    def __init__(self, db: SQLAlchemyAsyncConfig) -> None:
        self._db = db

    async def get(self, task_id: UUID) -> Task | None:
        async with self._db.get_session() as session:
            return (await session.execute(select(Task).where(Task.id == task_id))).scalar_one_or_none()

    async def page(self, *, limit: int, offset: int, status: str | None) -> tuple[Sequence[Any], int]:
        """Summary rows, newest first, and how many tasks match."""
        # only the listed columns: results and parameters can be large and are not shown here
        query = select(*SUMMARY_COLUMNS)
        count = select(func.count()).select_from(Task)
        if status is not None:
            query = query.where(Task.status == status)
            count = count.where(Task.status == status)
        query = query.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit).offset(offset)
        async with self._db.get_session() as session:
            rows = (await session.execute(query)).all()
            total = (await session.execute(count)).scalar_one()
        return rows, int(total)
