"""Task rows: the few writes every path (queued jobs, the synchronous OpenAI path) shares."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import select, update

from whisperx_api.db.models import Task
from whisperx_api.runtime import Runtime


async def insert_task(runtime: Runtime, **fields: Any) -> Task:
    task = Task(**{"progress": 0.0, "attempts": 0, **fields})
    async with runtime.db.get_session() as session:
        session.add(task)
        await session.commit()
    return task


async def update_task(runtime: Runtime, task_id: UUID, **values: Any) -> None:
    async with runtime.db.get_session() as session:
        await session.execute(update(Task).where(Task.id == task_id).values(**values))
        await session.commit()


async def find_task(runtime: Runtime, task_id: UUID) -> Task | None:
    async with runtime.db.get_session() as session:
        return (await session.execute(select(Task).where(Task.id == task_id))).scalar_one_or_none()
