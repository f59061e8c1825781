"""A task's parameters, typed: written by submit() into the task row, read back by execute()."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from whisperx_api.pipeline.options import PipelineOptions
from whisperx_api.pipeline.results import Transcript, Turn
from whisperx_api.speaker_library.naming import SpeakerNaming


class EnrolmentIn(msgspec.Struct, omit_defaults=True):
    """Whose voice an enrolment stores."""

    speaker_label: str
    description: str | None = None
    task_uuid: UUID | None = None


class KnownSpeaker(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A voice a /v1 request names (known_speaker_names[]): its reference recording, stored
    until the task ends, or None for the speaker library's voices of that label."""

    name: str
    reference: str | None = None
    store: bool = False  # also add the reference to the speaker library


class TaskParams(msgspec.Struct, omit_defaults=True, kw_only=True):
    options: PipelineOptions | None = None
    speakers: SpeakerNaming | None = None  # what the speaker library is asked to do
    transcript: Transcript | None = None  # /service/align, /service/combine
    diarization: list[Turn] | None = None  # /service/combine
    enrolment: EnrolmentIn | None = None  # /speakers/enroll
    response_format: str | None = None  # /v1: what the client asked for
    align: bool = False  # /v1: word timings wanted
    known_speakers: list[KnownSpeaker] | None = None  # /v1: who the diarized speakers may be


def encode_params(params: TaskParams) -> dict[str, Any]:
    return dict(msgspec.to_builtins(params))


def decode_params(raw: Any) -> TaskParams:
    return msgspec.convert(raw or {}, TaskParams)
