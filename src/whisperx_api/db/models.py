"""Tables: tasks (the source of truth for every job) and speaker vectors."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from advanced_alchemy.base import UUIDAuditBase
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import JSON, Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

# advanced-alchemy's JsonB adds a CHECK constraint hook that breaks on SQLAlchemy 2.1; the plain
# JSON type with a JSONB variant stores the same thing.
JsonB = JSON().with_variant(JSONB(), "postgresql")


class TaskStatus(enum.StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


ACTIVE_STATUSES = (TaskStatus.QUEUED.value, TaskStatus.PROCESSING.value)
# The largest page offset a list accepts: beyond any table this service keeps, and far below
# what overflows the database drivers (a 30-digit offset was a 500 before).
MAX_OFFSET = 10**9


class TaskType(enum.StrEnum):
    FULL_PROCESS = "full_process"
    TRANSCRIPTION = "transcription"
    TRANSCRIPTION_ALIGNMENT = "transcription_alignment"
    DIARIZATION = "diarization"
    COMBINE = "combine"
    MEDIA_PROBE = "media_probe"
    OPENAI_TRANSCRIPTION = "openai_transcription"
    OPENAI_TRANSLATION = "openai_translation"
    SPEAKER_ENROLMENT = "speaker_enrolment"


# run within the request that asked for them (the caller waits), not by a queue worker
INLINE_TYPES = (
    TaskType.OPENAI_TRANSCRIPTION.value,
    TaskType.OPENAI_TRANSLATION.value,
    TaskType.SPEAKER_ENROLMENT.value,
)


class Task(UUIDAuditBase):
    __tablename__ = "task"
    __table_args__ = (
        # the task list's order, whole: (created_at, id) desc, so no page is sorted again
        Index("ix_task_status_created_at_id", "status", "created_at", "id"),
        Index("ix_task_created_at_id", "created_at", "id"),
    )

    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.QUEUED.value)
    task_type: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JsonB, default=dict)
    result: Mapped[Any | None] = mapped_column(JsonB, nullable=True, default=None)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True, default=None)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str | None] = mapped_column(String(32), nullable=True, default=None)
    file_name: Mapped[str | None] = mapped_column(String(512), nullable=True, default=None)
    media_path: Mapped[str | None] = mapped_column(String(1024), nullable=True, default=None)
    url: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True, default=None)
    audio_duration: Mapped[float | None] = mapped_column(Float, nullable=True, default=None)
    processing_duration: Mapped[float | None] = mapped_column(Float, nullable=True, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True, default=None)


class Speaker(UUIDAuditBase):
    __tablename__ = "speaker"
    __table_args__ = (Index("ix_speaker_encoder_dimension", "encoder_model", "dimension"),)

    label: Mapped[str] = mapped_column(String(255), index=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    task_id: Mapped[UUID | None] = mapped_column(GUID, nullable=True, index=True, default=None)
    encoder_model: Mapped[str] = mapped_column(String(128))
    dimension: Mapped[int] = mapped_column(Integer)
    # float32 little-endian, L2-normalised once at write time so search is a dot product
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    # the enrolment recording, kept (KEEP_VOICE_SAMPLES) so `speakers reembed` can recompute the
    # vector with another encoder; None for vectors posted directly or stored from a task
    sample_path: Mapped[str | None] = mapped_column(String(1024), nullable=True, default=None)
