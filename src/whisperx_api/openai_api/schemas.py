"""OpenAI's audio API shapes (what the official SDK sends and parses)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar.datastructures import UploadFile

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]


class TranscriptionForm(msgspec.Struct, kw_only=True):
    file: UploadFile
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    language: Annotated[str, msgspec.Meta(max_length=16)] | None = None
    prompt: Annotated[str, msgspec.Meta(max_length=4000)] | None = None
    response_format: ResponseFormat = "json"
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    timestamp_granularities: list[Literal["segment", "word"]] | None = msgspec.field(
        default=None, name="timestamp_granularities[]"
    )
    stream: bool = False


class TranslationForm(msgspec.Struct, kw_only=True):
    file: UploadFile
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    prompt: Annotated[str, msgspec.Meta(max_length=4000)] | None = None
    response_format: ResponseFormat = "json"
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None


class TextOnly(msgspec.Struct):
    """response_format=json: the text alone."""

    text: str


class Word(msgspec.Struct):
    word: str
    start: float
    end: float


class Segment(msgspec.Struct):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class VerboseTranscript(msgspec.Struct, omit_defaults=True):
    task: str
    language: str
    duration: float
    text: str
    segments: list[Segment]
    words: list[Word] | None = None


class Model(msgspec.Struct):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = "whisperx-api"


class ModelList(msgspec.Struct):
    data: list[Model]
    object: str = "list"
