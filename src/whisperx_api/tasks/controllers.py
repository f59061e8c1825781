"""/task: list, read and delete tasks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Response, delete, get
from litestar.params import Parameter
from sqlalchemy import func, select

from whisperx_api.db.models import ACTIVE_STATUSES, MAX_OFFSET, Task
from whisperx_api.errors import ApiError, parse_uuid
from whisperx_api.openapi import error_responses
from whisperx_api.pipeline.formats import CONTENT_TYPES, RENDERERS
from whisperx_api.runtime import Runtime
from whisperx_api.tasks.schemas import SUMMARY_COLUMNS, StatusFilter, TaskDeleted, TaskList, to_detail, to_summary
from whisperx_api.tasks.store import find_task


async def load_task(runtime: Runtime, identifier: str) -> Task:
    task_id = parse_uuid(identifier, "task", "TASK_NOT_FOUND", "identifier")
    task = await find_task(runtime, task_id)
    if task is None:
        raise ApiError(404, f"task {task_id} not found", "TASK_NOT_FOUND", "identifier")
    return task


class TaskController(Controller):
    path = "/task"
    tags = ["Tasks"]

    @get("/all", summary="List tasks, newest first", responses=error_responses(422))
    async def list_tasks(
        self,
        runtime: Runtime,
        limit: Annotated[int, Parameter(ge=1, le=1000, description="page size")] = 100,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET, description="rows to skip")] = 0,
        status: Annotated[StatusFilter | None, Parameter(description="only tasks in this status")] = None,
    ) -> TaskList:
        # only the listed columns: results and parameters can be large and are not shown here
        query = select(*SUMMARY_COLUMNS)
        count = select(func.count()).select_from(Task)
        if status is not None:
            query = query.where(Task.status == status)
            count = count.where(Task.status == status)
        query = query.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit).offset(offset)
        async with runtime.db.get_session() as session:
            tasks = (await session.execute(query)).all()
            total = (await session.execute(count)).scalar_one()
        return TaskList(tasks=[to_summary(t) for t in tasks], total=total, limit=limit, offset=offset)

    @get(
        "/{identifier:str}",
        summary="Get a task's status, progress, result and metadata",
        responses=error_responses(404, 409, 422),
    )
    async def get_task(
        self,
        runtime: Runtime,
        identifier: str,
        format: Annotated[
            Literal["json", "srt", "vtt", "txt"] | None,
            Parameter(description="render a finished transcript as subtitles or text (speaker labels included)"),
        ] = None,
    ) -> Response[Any]:
        task = await load_task(runtime, identifier)
        if format in (None, "json"):
            return Response(to_detail(task))
        if task.status != "completed":
            raise ApiError(
                409,
                f"task {task.id} is {task.status}; only a completed task can be rendered",
                "TASK_NOT_COMPLETED",
                "format",
            )
        segments = task.result.get("segments") if isinstance(task.result, dict) else None
        if not isinstance(segments, list) or not any("text" in s for s in segments):
            raise ApiError(
                422, f"task {task.id} ({task.task_type}) has no transcript to render", "NO_TRANSCRIPT", "format"
            )
        return Response(RENDERERS[format](segments), media_type=f"{CONTENT_TYPES[format]}; charset=utf-8")

    @delete(
        ["/{identifier:str}/delete", "/{identifier:str}"],
        status_code=200,
        summary="Delete a task (a queued or running job is aborted)",
        responses=error_responses(404, 422),
    )
    async def delete_task(self, runtime: Runtime, identifier: str) -> TaskDeleted:
        task = await load_task(runtime, identifier)
        if task.status in ACTIVE_STATUSES:
            job = await runtime.queue.job(str(task.id))
            if job is not None:
                await runtime.queue.abort(job, error="task deleted")
        async with runtime.db.get_session() as session:
            row = await session.get(Task, task.id)
            if row is not None:
                await session.delete(row)
                await session.commit()
        runtime.media.delete(task.media_path)
        await runtime.admission.release("async", str(task.id))
        return TaskDeleted(identifier=task.id)
