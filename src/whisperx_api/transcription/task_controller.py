"""/task: list and read tasks, render transcripts, delete a task (through the service)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, delete, get
from litestar.params import Parameter

from whisperx_api.db.models import MAX_OFFSET, Task
from whisperx_api.errors import ApiError, parse_uuid
from whisperx_api.openapi import error_responses
from whisperx_api.pipeline.formats import CONTENT_TYPES, RENDERERS
from whisperx_api.pipeline.results import Transcript
from whisperx_api.tasks.reads import TaskReader
from whisperx_api.tasks.schemas import StatusFilter, TaskDeleted, TaskList, to_detail, to_summary
from whisperx_api.transcription.service import TranscriptionService


async def load_task(tasks: TaskReader, identifier: str) -> Task:
    task_id = parse_uuid(identifier, "task", "TASK_NOT_FOUND", "identifier")
    task = await tasks.get(task_id)
    if task is None:
        raise ApiError(404, f"task {task_id} not found", "TASK_NOT_FOUND", "identifier")
    return task


class TaskController(Controller):
    path = "/task"
    tags = ["Tasks"]

    @get("/all", summary="List tasks, newest first", responses=error_responses(422))
    async def list_tasks(
        self,
        tasks: TaskReader,
        limit: Annotated[int, Parameter(ge=1, le=1000, description="page size")] = 100,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET, description="rows to skip")] = 0,
        status: Annotated[StatusFilter | None, Parameter(description="only tasks in this status")] = None,
    ) -> TaskList:
        rows, total = await tasks.page(limit=limit, offset=offset, status=status)
        return TaskList(tasks=[to_summary(t) for t in rows], total=total, limit=limit, offset=offset)

    @get(
        "/{identifier:str}",
        summary="Get a task's status, progress, result and metadata",
        responses=error_responses(404, 409, 422),
    )
    async def get_task(
        self,
        tasks: TaskReader,
        identifier: str,
        format: Annotated[
            Literal["json", "srt", "vtt", "txt"] | None,
            Parameter(description="render a finished transcript as subtitles or text (speaker labels included)"),
        ] = None,
    ) -> Response[Any]:
        task = await load_task(tasks, identifier)
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
        transcript = msgspec.convert(task.result, Transcript)
        return Response(RENDERERS[format](transcript.segments), media_type=f"{CONTENT_TYPES[format]}; charset=utf-8")

    @delete(
        ["/{identifier:str}/delete", "/{identifier:str}"],
        status_code=200,
        summary="Delete a task (a queued or running job is aborted)",
        responses=error_responses(404, 422),
    )
    async def delete_task(self, transcription: TranscriptionService, identifier: str) -> TaskDeleted:
        task_id = parse_uuid(identifier, "task", "TASK_NOT_FOUND", "identifier")
        if await transcription.delete(task_id) is None:
            raise ApiError(404, f"task {task_id} not found", "TASK_NOT_FOUND", "identifier")
        return TaskDeleted(identifier=task_id)
