"""/task: list and read tasks, render transcripts, follow a task's events, play its media,
rename its speakers, delete it (changes go through the transcription service)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, delete, get, put
from litestar.openapi import ResponseSpec
from litestar.params import Parameter
from litestar.response import ServerSentEvent, Stream

from whisperx_api.db.models import MAX_OFFSET
from whisperx_api.errors import ApiError, parse_uuid
from whisperx_api.media.playback import playback
from whisperx_api.openapi import error_responses
from whisperx_api.pipeline.formats import CONTENT_TYPES, RENDERERS
from whisperx_api.pipeline.results import Transcript
from whisperx_api.runtime import Runtime
from whisperx_api.tasks.event_stream import EVENTS_DESCRIPTION, event_stream, resume_point
from whisperx_api.tasks.reads import Cursor, TaskReader, TaskRecord
from whisperx_api.tasks.schemas import (
    SpeakerRename,
    SpeakerRenamed,
    StatusFilter,
    TaskDeleted,
    TaskDetail,
    TaskList,
    to_detail,
    to_summary,
)
from whisperx_api.transcription.service import TranscriptionService

PLAYBACK_RESPONSES = {
    200: ResponseSpec(
        bytes, description="The whole file, as its type (audio/mpeg, video/mp4...)", media_type="audio/*"
    ),
    206: ResponseSpec(bytes, description="The part asked for (Content-Range)", media_type="audio/*"),
    **error_responses(404, 416),
}


NOT_MODIFIED = ResponseSpec(None, description="Not modified: If-None-Match holds the current ETag")


def tagged(body: bytes, media_type: str, if_none_match: str | None) -> Response[Any]:
    """The body with an ETag (a hash of it: right whatever changed the task), or 304 when the
    client already has it. Cache-Control no-cache: a cache must ask each time."""
    etag = f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if if_none_match is not None:
        held = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        if etag in held or "*" in held:
            return Response(b"", status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


async def load_task(tasks: TaskReader, identifier: str) -> TaskRecord:
    task_id = parse_uuid(identifier, "task", "TASK_NOT_FOUND", "identifier")
    task = await tasks.get(task_id)
    if task is None:
        raise ApiError(404, f"task {task_id} not found", "TASK_NOT_FOUND", "identifier")
    return task


class TaskController(Controller):
    path = "/task"
    tags = ["Tasks"]

    @get(
        "/all", summary="List tasks, newest first",
        description="Page with `offset`, or with `cursor` (the previous page's `next_cursor`): a cursor page "
        "is as fast deep in the list as at its top, and no task is skipped or repeated while new ones arrive.",
        responses=error_responses(422),
    )  # fmt: skip
    async def list_tasks(
        self,
        tasks: TaskReader,
        limit: Annotated[int, Parameter(ge=1, le=1000, description="page size")] = 100,
        offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET, description="rows to skip")] = 0,
        status: Annotated[StatusFilter | None, Parameter(description="only tasks in this status")] = None,
        cursor: Annotated[
            str | None, Parameter(max_length=200, description="the page after this one (next_cursor of the last page)")
        ] = None,
    ) -> TaskList:
        if cursor is not None and offset:
            raise ApiError(422, "give cursor or offset, not both", "CONFLICTING_PARAMETER", "offset")
        after = Cursor.decode(cursor) if cursor is not None else None
        rows, total = await tasks.page(limit=limit, offset=offset, status=status, after=after)
        last = Cursor(rows[-1].created_at, rows[-1].id).encode() if len(rows) == limit else None
        return TaskList(tasks=[to_summary(t) for t in rows], total=total, limit=limit, offset=offset, next_cursor=last)

    @get(
        "/{identifier:str}",
        summary="Get a task's status, progress, result and metadata",
        description="Every answer has an `ETag`; a poller that sends it back in `If-None-Match` gets 304 "
        "with no body until the task changes.",
        responses={
            200: ResponseSpec(TaskDetail, description="The task (format json; the other formats: its transcript)"),
            304: NOT_MODIFIED,
            **error_responses(404, 409, 422),
        },
    )
    async def get_task(
        self,
        tasks: TaskReader,
        identifier: str,
        format: Annotated[
            Literal["json", "srt", "vtt", "txt"] | None,
            Parameter(description="render a finished transcript as subtitles or text (speaker labels included)"),
        ] = None,
        if_none_match: Annotated[
            str | None, Parameter(header="If-None-Match", description="the ETag of the copy you have")
        ] = None,
    ) -> Response[Any]:
        task = await load_task(tasks, identifier)
        if format in (None, "json"):
            return tagged(msgspec.json.encode(to_detail(task)), "application/json", if_none_match)
        if task.status != "completed":
            raise ApiError(
                409,
                f"task {task.id} is {task.status}; only a completed task can be rendered",
                "TASK_NOT_COMPLETED",
                "format",
            )
        result = msgspec.json.decode(task.result) if task.result is not None else None
        segments = result.get("segments") if isinstance(result, dict) else None
        if not isinstance(segments, list) or not any("text" in s for s in segments):
            raise ApiError(
                422, f"task {task.id} ({task.task_type}) has no transcript to render", "NO_TRANSCRIPT", "format"
            )
        transcript = msgspec.convert(result, Transcript)
        rendered = RENDERERS[format](transcript.segments).encode()
        return tagged(rendered, f"{CONTENT_TYPES[format]}; charset=utf-8", if_none_match)

    @get(
        "/{identifier:str}/events",
        summary="Follow a task: its stage, progress, decoded segments and final state, as server-sent events",
        description=EVENTS_DESCRIPTION,
        responses=error_responses(400, 404),
        media_type="text/event-stream",
    )
    async def task_events(
        self,
        tasks: TaskReader,
        runtime: Runtime,
        identifier: str,
        last_event_id: Annotated[
            str | None,
            Parameter(header="Last-Event-ID", description="resume after this event (browsers send it on reconnect)"),
        ] = None,
    ) -> ServerSentEvent:
        task_id = parse_uuid(identifier, "task", "TASK_NOT_FOUND", "identifier")
        after = await resume_point(runtime.events, task_id, last_event_id)
        task = await load_task(tasks, identifier)
        return ServerSentEvent(event_stream(tasks, runtime.events, task, after, resumed=last_event_id is not None))

    @get(
        "/{identifier:str}/audio",
        summary="The task's media, for playback (HTTP range requests)",
        description="Kept MEDIA_RETENTION_H hours (default 24) after the task completes; a failed task's media "
        "is not kept. `Range: bytes=start-end` gets 206 with that part.",
        responses=PLAYBACK_RESPONSES,
    )
    async def task_audio(
        self,
        tasks: TaskReader,
        identifier: str,
        range_header: Annotated[str | None, Parameter(header="Range", description="bytes=start-end")] = None,
    ) -> Stream:
        task = await load_task(tasks, identifier)
        path = Path(task.media_path) if task.media_path else None
        if path is None or not path.is_file():
            raise ApiError(
                404, f"task {task.id} has no media to play: it is deleted when a task fails and "
                "MEDIA_RETENTION_H hours after it completes", "MEDIA_NOT_KEPT", "identifier",
            )  # fmt: skip
        return playback(path, range_header, task.file_name)

    @put(
        "/{identifier:str}/speakers/{speaker:str}",
        summary="Rename a speaker of a completed task (and its voice in the speaker library)",
        description="The transcript (and its renderings) use the new name. When the voice is in the speaker "
        "library (identified, or stored by this task with auto_store_speakers), that library entry is renamed "
        "too, so later recordings of the voice are named with it.",
        responses=error_responses(404, 409, 422),
    )
    async def rename_speaker(
        self, transcription: TranscriptionService, identifier: str, speaker: str, data: SpeakerRename
    ) -> SpeakerRenamed:
        task_id = parse_uuid(identifier, "task", "TASK_NOT_FOUND", "identifier")
        label = data.speaker_label.strip()
        if not label:
            raise ApiError(422, "speaker_label must not be blank", "VALIDATION_ERROR", "speaker_label")
        renamed = await transcription.rename_speaker(task_id, speaker, label)
        if renamed is None:
            raise ApiError(404, f"task {task_id} not found", "TASK_NOT_FOUND", "identifier")
        task, linked = renamed
        segments = task.result.get("segments", []) if isinstance(task.result, dict) else []
        speakers = sorted({s["speaker"] for s in segments if s.get("speaker")})
        return SpeakerRenamed(
            identifier=task_id, speaker=speaker, speaker_label=label, speaker_uuid=linked, speakers=speakers
        )

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
