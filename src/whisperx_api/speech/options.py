"""Request parameters -> pipeline options, with settings as defaults and every check done up front."""

from __future__ import annotations

from typing import Any

import msgspec
from whisperx.utils import LANGUAGES

from whisperx_api.errors import ApiError
from whisperx_api.pipeline.models import is_acceptable_model_name, local_model_names
from whisperx_api.pipeline.options import (
    AlignOptions,
    AsrOptions,
    DiarizeOptions,
    PipelineOptions,
    VadOptions,
    WhisperOptions,
)
from whisperx_api.settings import Settings
from whisperx_api.speakers.naming import SpeakerNaming
from whisperx_api.speech.schemas import PipelineParams

LANGUAGE_CODES = frozenset(LANGUAGES)


def check_language(language: str | None, param: str = "language") -> str | None:
    if language is None or language == "":
        return None
    code = language.strip().lower()
    if code not in LANGUAGE_CODES:
        raise ApiError(
            422, f"unknown language code {language!r}; use an ISO 639-1 code Whisper knows (en, de, es, ...)",
            "INVALID_LANGUAGE_CODE", param,
        )  # fmt: skip
    return code


def check_model(name: str, settings: Settings, param: str = "model") -> str:
    if not is_acceptable_model_name(name, settings.resolved_models_dir):
        available = ", ".join(local_model_names(settings.resolved_models_dir)) or "none"
        raise ApiError(422, f"unknown model {name!r}; available here: {available}", "MODEL_NOT_FOUND", param)
    return name


def check_speakers(num: int | None, low: int | None, high: int | None) -> None:
    if low is not None and high is not None and low > high:
        raise ApiError(
            422, f"min_speakers ({low}) is greater than max_speakers ({high})", "INVALID_SPEAKER_RANGE", "min_speakers"
        )
    if num is not None and ((low is not None and num < low) or (high is not None and num > high)):
        raise ApiError(
            422, "num_speakers is outside min_speakers..max_speakers", "INVALID_SPEAKER_RANGE", "num_speakers"
        )


def build_options(params: PipelineParams, settings: Settings) -> PipelineOptions:
    model = check_model(params.model or settings.whisper_model, settings)
    language = check_language(params.language if params.language is not None else (settings.default_lang or None))
    if model.endswith(".en"):
        if params.task == "translate":
            raise ApiError(
                422,
                f"model {model!r} is English-only and cannot translate; use a multilingual model",
                "TRANSLATION_UNSUPPORTED",
                "task",
            )
        if language not in (None, "en"):
            raise ApiError(
                422,
                f"model {model!r} is English-only; language {language!r} needs a multilingual model",
                "INVALID_LANGUAGE_CODE",
                "language",
            )
    check_speakers(params.num_speakers, params.min_speakers, params.max_speakers)
    if params.vad_offset > params.vad_onset:
        raise ApiError(422, "vad_offset must not be greater than vad_onset", "VALIDATION_ERROR", "vad_offset")
    asr_defaults = AsrOptions()
    return PipelineOptions(
        whisper=WhisperOptions(
            model=model,
            language=language,
            task=params.task,
            device=params.device or settings.device,
            device_index=params.device_index,
            compute_type=params.compute_type or settings.compute_type,
            batch_size=params.batch_size or settings.batch_size,
            chunk_size=params.chunk_size,
            threads=params.threads,
        ),
        asr=AsrOptions(
            beam_size=params.beam_size,
            best_of=params.best_of,
            patience=params.patience,
            length_penalty=params.length_penalty,
            temperatures=tuple(params.temperatures) if params.temperatures else asr_defaults.temperatures,
            compression_ratio_threshold=params.compression_ratio_threshold,
            log_prob_threshold=params.log_prob_threshold,
            no_speech_threshold=params.no_speech_threshold,
            initial_prompt=params.initial_prompt,
            suppress_tokens=tuple(params.suppress_tokens) if params.suppress_tokens else asr_defaults.suppress_tokens,
            suppress_numerals=params.suppress_numerals,
            hotwords=params.hotwords,
        ),
        vad=VadOptions(
            vad_method=params.vad_method or settings.vad_method,
            vad_onset=params.vad_onset,
            vad_offset=params.vad_offset,
        ),
        align=AlignOptions(
            backend=params.align_backend or settings.align_backend,
            align_model=params.align_model,
            interpolate_method=params.interpolate_method,
            return_char_alignments=params.return_char_alignments,
        ),
        diarize=DiarizeOptions(
            backend=params.diarization_backend or settings.diarization_backend,
            num_speakers=params.num_speakers,
            min_speakers=params.min_speakers,
            max_speakers=params.max_speakers,
            return_embeddings=params.return_embeddings,
        ),
        diarization=params.diarize,
    )


def build_naming(params: PipelineParams, diarizes: bool) -> SpeakerNaming:
    """What the task asks of the speaker library; asking it of a task without diarization is a 422."""
    naming = SpeakerNaming(params.identify_speakers, params.auto_store_speakers, params.speaker_threshold)
    if naming.wanted and not diarizes:
        param = "identify_speakers" if params.identify_speakers else "auto_store_speakers"
        raise ApiError(
            422, f"{param} needs diarization, which this request does not run (diarize=false or a service "
            "without diarization)", "VALIDATION_ERROR", param,
        )  # fmt: skip
    return naming


def decode_json_upload(raw: bytes, schema: Any, param: str) -> Any:
    """Parse an uploaded JSON document; malformed or schema-invalid input is a 422, never a 500."""
    try:
        return msgspec.json.decode(raw, type=schema)
    except msgspec.ValidationError as exc:
        raise ApiError(
            422, f"{param} does not match the expected schema: {exc}", "INVALID_JSON_SCHEMA", param
        ) from None
    except msgspec.DecodeError as exc:
        raise ApiError(422, f"{param} is not valid JSON: {exc}", "INVALID_JSON", param) from None
