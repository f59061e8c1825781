"""What a caller may ask of the pipeline (plain data; the web layer fills it from requests), the
engine's configuration, and the enrolment result: plain data that crosses to and from the
inference process without importing the ML stack."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class WhisperOptions:
    model: str = "base"
    language: str | None = None  # None = detect
    task: Literal["transcribe", "translate"] = "transcribe"
    device: str = "auto"
    device_index: int = 0
    compute_type: str = "auto"
    batch_size: int = 8
    chunk_size: int = 30
    threads: int = 0  # 0 = CTranslate2's default


@dataclass(frozen=True)
class AsrOptions:
    beam_size: int = 5
    best_of: int = 5
    patience: float = 1.0
    length_penalty: float = 1.0
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float = 2.4
    log_prob_threshold: float = -1.0
    no_speech_threshold: float = 0.6
    initial_prompt: str | None = None
    suppress_tokens: tuple[int, ...] = (-1,)
    suppress_numerals: bool = False
    hotwords: str | None = None


@dataclass(frozen=True)
class VadOptions:
    vad_method: Literal["pyannote", "silero"] = "pyannote"
    vad_onset: float = 0.5
    vad_offset: float = 0.363
    # silence added before each speech region, and the shortest pause that ends one (None: the
    # method's own: none for pyannote; 30 ms and 100 ms for Silero). /v1's chunking_strategy
    # sets them (prefix_padding_ms, silence_duration_ms)
    speech_pad_s: float | None = None
    min_silence_s: float | None = None


@dataclass(frozen=True)
class AlignOptions:
    backend: Literal["auto", "wav2vec2", "whisper"] = "auto"
    align_model: str | None = None
    interpolate_method: Literal["nearest", "linear", "ignore"] = "nearest"
    return_char_alignments: bool = False


@dataclass(frozen=True)
class DiarizeOptions:
    backend: Literal["auto", "pyannote", "campp", "embedded"] = "auto"
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    return_embeddings: bool = False


@dataclass(frozen=True)
class PipelineOptions:
    whisper: WhisperOptions = field(default_factory=WhisperOptions)
    asr: AsrOptions = field(default_factory=AsrOptions)
    vad: VadOptions = field(default_factory=VadOptions)
    align: AlignOptions = field(default_factory=AlignOptions)
    diarize: DiarizeOptions = field(default_factory=DiarizeOptions)
    diarization: bool = True
    # score the transcript's tokens with the decoder (/v1 include[]=logprobs; pipeline/logprobs.py)
    token_logprobs: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineOptions:
        def build(kind: type, values: dict[str, Any] | None) -> Any:
            values = dict(values or {})
            for key, value in values.items():
                if isinstance(value, list):
                    values[key] = tuple(value)
            return kind(**values)

        return cls(
            whisper=build(WhisperOptions, data.get("whisper")),
            asr=build(AsrOptions, data.get("asr")),
            vad=build(VadOptions, data.get("vad")),
            align=build(AlignOptions, data.get("align")),
            diarize=build(DiarizeOptions, data.get("diarize")),
            diarization=bool(data.get("diarization", True)),
            token_logprobs=bool(data.get("token_logprobs", False)),
        )


@dataclass(frozen=True)
class EngineConfig:
    """What a SpeechEngine is built from (one engine, one warm model cache, per configuration)."""

    models_dir: Path
    hf_token: str | None = None
    pyannote_pipeline: str = "pyannote/speaker-diarization-community-1"
    max_concurrent: int = 1
    model_cache_size: int = 2
    model_idle_unload_s: float = 1800


@dataclass(frozen=True)
class Enrolment:
    """A voice's vector from a recording of that voice (SpeechEngine.speaker_embedding)."""

    vector: np.ndarray
    encoder_model: str
    speech_seconds: float
    duration: float
