"""Task rows as the lifecycle writes them: insert, update, read, delete. Only the transcription
service (service.py) writes task rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from sqlalchemy import bindparam, delete, select, update

from whisperx_api.db.models import ACTIVE_STATUSES, INLINE_TYPES, Task


class TaskRows:
    def __init__(self, db: SQLAlchemyAsyncConfig, counted: Callable[[], None]) -> None:
        """`counted`: called when a write changes how many tasks there are in a status."""
        self._db, self._counted = db, counted

    async def insert(self, **fields: Any) -> Task:
        task = Task(**{"progress": 0.0, "attempts": 0, **fields})
        async with self._db.get_session() as session:
            session.add(task)
            await session.commit()
        self._counted()
        return task

    async def update(self, task_id: UUID, **values: Any) -> None:
        # The values go with the execution, not into the statement: SQLAlchemy's compiled cache
        # keeps the first statement of each shape for good, with whatever values were bound in it.
        # A process whose first final write was a four-hour result (36,000 words) kept it, +54 MB
        # (bench_web_memory, 2026-12-07): every task's final write has the same shape.
        statement = (
            update(Task)
            .where(Task.id == bindparam("row_id"))
            .values({name: bindparam(f"new_{name}") for name in values})
            .execution_options(synchronize_session=False)
        )
        async with self._db.get_session() as session:
            await session.execute(statement, {"row_id": task_id, **{f"new_{name}": v for name, v in values.items()}})
            await session.commit()
        if "status" in values:
            self._counted()

    async def get(self, task_id: UUID) -> Task | None:
        async with self._db.get_session() as session:
            return (await session.execute(select(Task).where(Task.id == task_id))).scalar_one_or_none()

    async def delete(self, task_id: UUID) -> bool:
        async with self._db.get_session() as session:
            gone = (await session.execute(delete(Task).where(Task.id == task_id).returning(Task.id))).first()
            await session.commit()
        self._counted()
        return gone is not None

    async def with_media_before(self, cutoff: datetime) -> list[tuple[UUID, str]]:
        """(id, media_path) of the ended tasks that still have media and ended before `cutoff`."""
        async with self._db.get_session() as session:
            rows = await session.execute(
                select(Task.id, Task.media_path).where(
                    Task.status.not_in(ACTIVE_STATUSES), Task.media_path.is_not(None), Task.finished_at < cutoff
                )
            )
            return [(r[0], str(r[1])) for r in rows.all()]

    async def active(self, *, synchronous: bool) -> list[tuple[UUID, int, Any]]:
        """(id, attempts, started_at) of unfinished tasks, of the inline types or the queued ones."""
        kind = Task.task_type.in_(INLINE_TYPES) if synchronous else Task.task_type.not_in(INLINE_TYPES)
        async with self._db.get_session() as session:
            rows = await session.execute(
                select(Task.id, Task.attempts, Task.started_at).where(Task.status.in_(ACTIVE_STATUSES), kind)
            )
            return [(r[0], r[1], r[2]) for r in rows.all()]
