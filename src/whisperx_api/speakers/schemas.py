"""Request and response bodies of /speakers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from litestar.datastructures import UploadFile

from whisperx_api.db.models import Speaker
from whisperx_api.speaker_library.vectors import MAX_DIMENSION, from_bytes

Label = Annotated[str, msgspec.Meta(min_length=1, max_length=255, description="the person's name or handle")]
Description = Annotated[str, msgspec.Meta(max_length=4000)]
EncoderModel = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=128,
        description="encoder that made the vector; default: the encoder this service diarizes with",
    ),
]  # fmt: skip
Embedding = Annotated[
    list[float],
    msgspec.Meta(min_length=1, max_length=MAX_DIMENSION, description="the speaker vector (any scale; normalised)"),
]
Threshold = Annotated[
    float,
    msgspec.Meta(
        ge=0.0, le=1.0,
        description="minimum cosine similarity; default: the encoder's own (0.65 for CAM++, 0.7 for resemblyzer)",
    ),
]  # fmt: skip


class SpeakerCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    speaker_label: Label
    embedding: Embedding
    description: Description | None = None
    task_uuid: UUID | None = None
    encoder_model: EncoderModel | None = None


class SpeakerUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields given change; `null` clears description or task_uuid."""

    speaker_label: Label | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    task_uuid: UUID | msgspec.UnsetType | None = msgspec.UNSET
    embedding: Embedding | msgspec.UnsetType = msgspec.UNSET
    encoder_model: EncoderModel | msgspec.UnsetType = msgspec.UNSET


class EnrollForm(msgspec.Struct, kw_only=True):
    file: UploadFile
    speaker_label: Label
    description: Description | None = None
    task_uuid: UUID | None = None


class SearchRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    embedding: Embedding
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    threshold: Threshold | None = None
    encoder_model: EncoderModel | None = None


class IdentifyRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    embedding: Embedding
    threshold: Threshold | None = None
    encoder_model: EncoderModel | None = None


class SpeakerOut(msgspec.Struct, kw_only=True):
    """The reference's speaker fields (uuid, task_uuid, speaker_label, description, embedding,
    created_at) and this service's (encoder_model, dimension, updated_at)."""

    uuid: UUID
    speaker_label: str
    description: str | None
    task_uuid: UUID | None
    encoder_model: str
    dimension: int
    created_at: datetime
    updated_at: datetime
    embedding: list[float] | msgspec.UnsetType = msgspec.UNSET


class EnrolledSpeaker(SpeakerOut, kw_only=True):
    speech_seconds: float
    audio_duration: float


class SpeakerList(msgspec.Struct):
    speakers: list[SpeakerOut]
    total: int
    limit: int
    offset: int


class SpeakerDeleted(msgspec.Struct):
    uuid: UUID
    message: str = "Speaker deleted"


class SpeakersDeleted(msgspec.Struct):
    task_uuid: UUID
    deleted: int


class SearchHit(msgspec.Struct):
    speaker: SpeakerOut
    similarity: float


class SearchResponse(msgspec.Struct):
    results: list[SearchHit]
    encoder_model: str
    dimension: int
    compared: int
    threshold: float
    note: str | None = None


class Candidate(msgspec.Struct):
    speaker_label: str
    similarity: float
    samples: int


class IdentifyResponse(msgspec.Struct):
    speaker_label: str
    similarity: float
    speaker: SpeakerOut
    samples: int
    encoder_model: str
    compared: int
    threshold: float
    candidates: list[Candidate]


def to_out(speaker: Speaker, with_embedding: bool = False) -> SpeakerOut:
    return SpeakerOut(
        uuid=speaker.id, speaker_label=speaker.label, description=speaker.description, task_uuid=speaker.task_id,
        encoder_model=speaker.encoder_model, dimension=speaker.dimension, created_at=speaker.created_at,
        updated_at=speaker.updated_at,
        embedding=[float(x) for x in from_bytes(speaker.vector)] if with_embedding else msgspec.UNSET,
    )  # fmt: skip
