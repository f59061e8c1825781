"""Request forms for the speech endpoints. Options are multipart form fields (documented in OpenAPI)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar.datastructures import UploadFile

Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Speakers = Annotated[int, msgspec.Meta(ge=1, le=100)]


class PipelineParams(msgspec.Struct, kw_only=True):
    """Every option the pipeline takes; unset fields fall back to the service's settings."""

    # whisper
    language: Annotated[str, msgspec.Meta(max_length=16)] | None = None
    task: Literal["transcribe", "translate"] = "transcribe"
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    device: Literal["auto", "cuda", "cpu"] | None = None
    device_index: Annotated[int, msgspec.Meta(ge=0, le=64)] = 0
    compute_type: Literal["auto", "float16", "float32", "int8", "int8_float16", "bfloat16"] | None = None
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=128)] | None = None
    chunk_size: Annotated[int, msgspec.Meta(ge=1, le=30)] = 30
    threads: Annotated[int, msgspec.Meta(ge=0, le=256)] = 0
    # ASR options
    beam_size: Annotated[int, msgspec.Meta(ge=1, le=20)] = 5
    best_of: Annotated[int, msgspec.Meta(ge=1, le=20)] = 5
    patience: Annotated[float, msgspec.Meta(gt=0.0, le=10.0)] = 1.0
    length_penalty: Annotated[float, msgspec.Meta(gt=0.0, le=10.0)] = 1.0
    temperatures: list[Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]] | None = None
    compression_ratio_threshold: float = 2.4
    log_prob_threshold: float = -1.0
    no_speech_threshold: Probability = 0.6
    initial_prompt: Annotated[str, msgspec.Meta(max_length=4000)] | None = None
    suppress_tokens: list[int] | None = None
    suppress_numerals: bool = False
    hotwords: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    # VAD
    vad_method: Literal["pyannote", "silero"] | None = None
    vad_onset: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.5
    vad_offset: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.363
    # alignment
    align_backend: Literal["auto", "wav2vec2", "whisper"] | None = None
    align_model: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    interpolate_method: Literal["nearest", "linear", "ignore"] = "nearest"
    return_char_alignments: bool = False
    # diarization
    diarize: bool = True
    diarization_backend: Literal["auto", "pyannote", "campp", "embedded"] | None = None
    num_speakers: Speakers | None = None
    min_speakers: Speakers | None = None
    max_speakers: Speakers | None = None
    return_embeddings: bool = False
    # speaker library
    identify_speakers: bool = False
    auto_store_speakers: bool = False
    # None: the speaker encoder's own default (0.65 for CAM++, 0.7 for resemblyzer)
    speaker_threshold: Probability | None = None
    # delivery
    callback_url: Annotated[str, msgspec.Meta(max_length=2048)] | None = None


class MediaForm(PipelineParams, kw_only=True):
    file: UploadFile


class UrlForm(PipelineParams, kw_only=True):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]


class AlignForm(PipelineParams, kw_only=True):
    file: UploadFile
    transcript: UploadFile


class CombineForm(msgspec.Struct, kw_only=True):
    aligned_transcript: UploadFile
    diarization_result: UploadFile
    callback_url: Annotated[str, msgspec.Meta(max_length=2048)] | None = None


class ProbeForm(msgspec.Struct, kw_only=True):
    file: UploadFile


# -- uploaded JSON documents (/service/align, /service/combine) --------------------------------
Seconds = Annotated[float, msgspec.Meta(ge=0.0, le=1e7)]


class WordIn(msgspec.Struct):
    word: str
    start: Seconds | None = None
    end: Seconds | None = None
    score: float | None = None
    speaker: str | None = None


class SegmentIn(msgspec.Struct):
    start: Seconds
    end: Seconds
    text: Annotated[str, msgspec.Meta(max_length=100_000)]
    words: list[WordIn] | None = None
    speaker: str | None = None


class TranscriptIn(msgspec.Struct):
    segments: Annotated[list[SegmentIn], msgspec.Meta(max_length=100_000)]
    language: str | None = None


class TurnIn(msgspec.Struct):
    start: Seconds
    end: Seconds
    speaker: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class DiarizationIn(msgspec.Struct):
    segments: Annotated[list[TurnIn], msgspec.Meta(max_length=1_000_000)]
