from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from whisperx_api.db.models import Task

StatusFilter = Literal["queued", "processing", "completed", "failed"]


class TaskError(msgspec.Struct):
    message: str
    code: str | None


class TaskSummary(msgspec.Struct):
    identifier: UUID
    status: str
    task_type: str
    progress: float
    stage: str | None
    file_name: str | None
    url: str | None
    language: str | None
    audio_duration: float | None
    duration: float | None
    error: TaskError | None
    created_at: datetime
    start_time: datetime | None
    end_time: datetime | None


class TaskMetadata(msgspec.Struct):
    task_type: str
    task_params: Any  # the JSON object of the task's parameters, as stored
    language: str | None
    file_name: str | None
    url: str | None
    callback_url: str | None
    duration: float | None
    audio_duration: float | None
    attempts: int
    created_at: datetime
    start_time: datetime | None
    end_time: datetime | None


class TaskDetail(msgspec.Struct):
    identifier: UUID
    status: str
    progress: float
    stage: str | None
    result: Any
    error: TaskError | None
    metadata: TaskMetadata


class TaskList(msgspec.Struct):
    tasks: list[TaskSummary]
    total: int
    limit: int
    offset: int
    # the next page after this one, for `cursor` (keyset paging: steady under inserts and as
    # fast deep in the list as at its top); null when this page is the last
    next_cursor: str | None = None


class TaskQueued(msgspec.Struct):
    identifier: UUID
    message: str = "Task queued"


class SpeakerRename(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    speaker_label: Annotated[str, msgspec.Meta(min_length=1, max_length=255, description="the speaker's new name")]


class SpeakerRenamed(msgspec.Struct, kw_only=True):
    identifier: UUID
    speaker: str
    speaker_label: str
    # the speaker library entry renamed with it (this voice identified as it, or stored from this
    # task); null: the voice is not in the library, only this transcript changed
    speaker_uuid: UUID | None
    speakers: list[str]


class TaskDeleted(msgspec.Struct):
    identifier: UUID
    message: str = "Task deleted"


SUMMARY_COLUMNS = (
    Task.id, Task.status, Task.task_type, Task.progress, Task.stage, Task.file_name, Task.url, Task.language,
    Task.audio_duration, Task.processing_duration, Task.error_message, Task.error_code, Task.created_at,
    Task.started_at, Task.finished_at,
)  # fmt: skip


def _error(task: Any) -> TaskError | None:
    return TaskError(task.error_message or "", task.error_code) if task.status == "failed" else None


def to_summary(task: Any) -> TaskSummary:
    """From a Task or a row of SUMMARY_COLUMNS."""
    return TaskSummary(
        identifier=task.id,
        status=task.status,
        task_type=task.task_type,
        progress=task.progress,
        stage=task.stage,
        file_name=task.file_name,
        url=task.url,
        language=task.language,
        audio_duration=task.audio_duration,
        duration=task.processing_duration,
        error=_error(task),
        created_at=task.created_at,
        start_time=task.started_at,
        end_time=task.finished_at,
    )


def _stored(text: str | None) -> msgspec.Raw | None:
    return msgspec.Raw(text.encode()) if text is not None else None


def to_detail(task: Any) -> TaskDetail:
    """From a row of DETAIL_COLUMNS (tasks/reads.py): its JSON documents go out as stored."""
    return TaskDetail(
        identifier=task.id,
        status=task.status,
        progress=task.progress,
        stage=task.stage,
        result=_stored(task.result),
        error=_error(task),
        metadata=TaskMetadata(
            task_type=task.task_type,
            task_params=_stored(task.params) or msgspec.Raw(b"{}"),
            language=task.language,
            file_name=task.file_name,
            url=task.url,
            callback_url=task.callback_url,
            duration=task.processing_duration,
            audio_duration=task.audio_duration,
            attempts=task.attempts,
            created_at=task.created_at,
            start_time=task.started_at,
            end_time=task.finished_at,
        ),
    )
