"""OpenAI's audio API shapes (what the official SDK sends and parses)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar.datastructures import UploadFile

from whisperx_api.pipeline.results import TokenLogprob

# translations keep whisper-1's classic formats; transcriptions add diarized_json
TranslationFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt", "diarized_json"]


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
    # OpenAI's chunking_strategy: "auto", a JSON object, or (as the SDK sends an object) one
    # bracketed field per key; see chunking.py
    chunking_strategy: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    chunking_type: str | None = msgspec.field(default=None, name="chunking_strategy[type]")
    chunking_threshold: str | None = msgspec.field(default=None, name="chunking_strategy[threshold]")
    chunking_prefix_padding_ms: str | None = msgspec.field(default=None, name="chunking_strategy[prefix_padding_ms]")
    chunking_silence_duration_ms: str | None = msgspec.field(
        default=None, name="chunking_strategy[silence_duration_ms]"
    )

    include: list[Literal["logprobs"]] | None = msgspec.field(default=None, name="include[]")
    # who the diarized speakers may be (known_speakers.py)
    known_speaker_names: list[Annotated[str, msgspec.Meta(max_length=100)]] | None = msgspec.field(
        default=None, name="known_speaker_names[]"
    )
    known_speaker_references: list[str] | None = msgspec.field(default=None, name="known_speaker_references[]")
    store_known_speakers: bool = False  # beyond OpenAI: also add the references to the speaker library

    def chunking_parts(self) -> dict[str, str]:
        given = {
            "type": self.chunking_type, "threshold": self.chunking_threshold,
            "prefix_padding_ms": self.chunking_prefix_padding_ms,
            "silence_duration_ms": self.chunking_silence_duration_ms,
        }  # fmt: skip
        return {name: value for name, value in given.items() if value is not None}


class TranslationForm(msgspec.Struct, kw_only=True):
    file: UploadFile
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    prompt: Annotated[str, msgspec.Meta(max_length=4000)] | None = None
    response_format: TranslationFormat = "json"
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None


class Usage(msgspec.Struct, kw_only=True):
    """What OpenAI bills audio-priced models by: the length of the input audio."""

    type: Literal["duration"] = "duration"
    seconds: float


class TextOnly(msgspec.Struct, omit_defaults=True, kw_only=True):
    """response_format=json: the text, usage, and the tokens' logprobs when asked."""

    text: str
    usage: Usage
    logprobs: list[TokenLogprob] | None = None  # the pipeline's, already in OpenAI's shape


class Word(msgspec.Struct, omit_defaults=True):
    word: str
    start: float
    end: float
    # beyond OpenAI: the decoder's probability of the word (the mean of its tokens'), when
    # Whisper itself timed the words (with a wav2vec2 model the score means something else)
    probability: float | None = None


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
    usage: Usage | None = None


class DiarizedSegment(msgspec.Struct, kw_only=True):
    type: Literal["transcript.text.segment"] = "transcript.text.segment"
    id: str
    start: float
    end: float
    text: str
    speaker: str


class DiarizedTranscript(msgspec.Struct, kw_only=True):
    """response_format=diarized_json: segments with their speakers (A, B, ... as OpenAI labels them)."""

    task: Literal["transcribe"] = "transcribe"
    duration: float
    text: str
    segments: list[DiarizedSegment]
    usage: Usage


class Model(msgspec.Struct):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = "whisperx-api"


class ModelList(msgspec.Struct):
    data: list[Model]
    object: str = "list"
