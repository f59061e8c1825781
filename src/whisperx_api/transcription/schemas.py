"""Request forms for the speech endpoints: each endpoint's pipeline options (form fields or query
parameters, see parameters.py) and its uploads."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar.datastructures import UploadFile

Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Speakers = Annotated[int, msgspec.Meta(ge=1, le=100)]
# one definition per option type, shared by every form that takes the option
Language = Annotated[str, msgspec.Meta(max_length=16, description="ISO 639-1 code; omitted: detected")]
ModelName = Annotated[str, msgspec.Meta(min_length=1, max_length=256, description="default: WHISPER_MODEL")]
Device = Literal["auto", "cuda", "cpu"]
DeviceIndex = Annotated[int, msgspec.Meta(ge=0, le=64)]
ComputeType = Literal["auto", "float16", "float32", "int8", "int8_float16", "bfloat16"]
Threads = Annotated[int, msgspec.Meta(ge=0, le=256)]
VadMethod = Literal["pyannote", "silero"]
VadThreshold = Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)]
AlignBackend = Literal["auto", "wav2vec2", "whisper"]
AlignModel = Annotated[str, msgspec.Meta(max_length=256)]
InterpolateMethod = Literal["nearest", "linear", "ignore"]
DiarizationBackend = Literal["auto", "pyannote", "campp", "embedded"]
CallbackUrl = Annotated[str, msgspec.Meta(max_length=2048, description="POSTed the task when it ends")]


class BaseOptions(msgspec.Struct, kw_only=True):
    """What every pipeline request takes. The option structs below are the options of each
    endpoint; each may come as a form field or as a query parameter (parameters.py)."""

    device: Device | None = None
    device_index: DeviceIndex = 0
    callback_url: CallbackUrl | None = None


class WhisperModelOptions(BaseOptions, kw_only=True):
    """Requests that run a Whisper model (transcription, or alignment by its cross-attention)."""

    model: ModelName | None = None
    language: Language | None = None
    compute_type: ComputeType | None = None
    threads: Threads = 0


class TranscribeOptions(WhisperModelOptions, kw_only=True):
    task: Literal["transcribe", "translate"] = "transcribe"
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=128)] | None = None
    chunk_size: Annotated[int, msgspec.Meta(ge=1, le=30)] = 30
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
    vad_method: VadMethod | None = None
    vad_onset: VadThreshold = 0.5
    vad_offset: VadThreshold = 0.363


class FullOptions(TranscribeOptions, kw_only=True):
    """/speech-to-text and /speech-to-text-url: transcription, alignment, diarization, names."""

    align_backend: AlignBackend | None = None
    align_model: AlignModel | None = None
    interpolate_method: InterpolateMethod = "nearest"
    return_char_alignments: bool = False
    diarize: bool = True
    diarization_backend: DiarizationBackend | None = None
    num_speakers: Speakers | None = None
    min_speakers: Speakers | None = None
    max_speakers: Speakers | None = None
    return_embeddings: bool = False
    identify_speakers: bool = False
    auto_store_speakers: bool = False
    # None: the speaker encoder's own default (0.65 for CAM++, 0.7 for resemblyzer)
    speaker_threshold: Probability | None = None


class AlignOnlyOptions(WhisperModelOptions, kw_only=True):
    """/service/align: the same alignment options as FullOptions (one test keeps them equal)."""

    align_backend: AlignBackend | None = None
    align_model: AlignModel | None = None
    interpolate_method: InterpolateMethod = "nearest"
    return_char_alignments: bool = False


class DiarizeOnlyOptions(BaseOptions, kw_only=True):
    """/service/diarize: the same VAD, diarization and speaker-library options as FullOptions."""

    vad_method: VadMethod | None = None
    vad_onset: VadThreshold = 0.5
    vad_offset: VadThreshold = 0.363
    diarization_backend: DiarizationBackend | None = None
    num_speakers: Speakers | None = None
    min_speakers: Speakers | None = None
    max_speakers: Speakers | None = None
    return_embeddings: bool = False
    identify_speakers: bool = False
    auto_store_speakers: bool = False
    speaker_threshold: Probability | None = None


PipelineOptionsIn = FullOptions | TranscribeOptions | AlignOnlyOptions | DiarizeOnlyOptions


class MediaForm(FullOptions, kw_only=True):
    file: UploadFile


class UrlForm(FullOptions, kw_only=True):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]


class TranscribeForm(TranscribeOptions, kw_only=True):
    file: UploadFile


class AlignForm(AlignOnlyOptions, kw_only=True):
    file: UploadFile
    transcript: UploadFile


class DiarizeForm(DiarizeOnlyOptions, kw_only=True):
    file: UploadFile


class CombineForm(msgspec.Struct, kw_only=True):
    aligned_transcript: UploadFile
    diarization_result: UploadFile
    callback_url: CallbackUrl | None = None


class ProbeForm(msgspec.Struct, kw_only=True):
    file: UploadFile


# -- uploaded JSON documents (/service/align, /service/combine) --------------------------------
Seconds = Annotated[float, msgspec.Meta(ge=0.0, le=1e7)]


class WordIn(msgspec.Struct, omit_defaults=True):
    word: str
    start: Seconds | None = None
    end: Seconds | None = None
    score: float | None = None
    speaker: str | None = None


class SegmentIn(msgspec.Struct, omit_defaults=True):
    start: Seconds
    end: Seconds
    text: Annotated[str, msgspec.Meta(max_length=100_000)]
    words: list[WordIn] | None = None
    speaker: str | None = None


class TranscriptIn(msgspec.Struct, omit_defaults=True):
    segments: Annotated[list[SegmentIn], msgspec.Meta(max_length=100_000)]
    language: str | None = None


class TurnIn(msgspec.Struct):
    start: Seconds
    end: Seconds
    speaker: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class DiarizationIn(msgspec.Struct):
    segments: Annotated[list[TurnIn], msgspec.Meta(max_length=1_000_000)]
