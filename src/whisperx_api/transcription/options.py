"""Request parameters -> pipeline options, with settings as defaults and every check done up front."""

from __future__ import annotations

from typing import Any

import msgspec
from whisperx.utils import LANGUAGES

from whisperx_api.db.models import TaskType
from whisperx_api.errors import ApiError
from whisperx_api.pipeline.encoders import speaker_encoder_model
from whisperx_api.pipeline.models import is_acceptable_model_name, local_model_names
from whisperx_api.pipeline.options import (
    AlignOptions,
    AsrOptions,
    DiarizeOptions,
    PipelineOptions,
    VadOptions,
    WhisperOptions,
)
from whisperx_api.security.outbound import OutboundError, parse_networks, resolve_target
from whisperx_api.settings import Settings
from whisperx_api.speaker_library.naming import SpeakerNaming
from whisperx_api.transcription.params import TaskParams
from whisperx_api.transcription.schemas import (
    AlignOnlyOptions,
    BaseOptions,
    DiarizeOnlyOptions,
    FullOptions,
    TranscribeOptions,
    WhisperModelOptions,
)

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


def build_options(params: BaseOptions, settings: Settings) -> PipelineOptions:
    """Checked pipeline options of a request; what its endpoint does not take comes from the
    settings and the pipeline's defaults."""
    defaults = PipelineOptions()
    whisper = _whisper(params, settings)
    full = params if isinstance(params, FullOptions) else None
    if full is not None:
        check_speakers(full.num_speakers, full.min_speakers, full.max_speakers)
    if isinstance(params, DiarizeOnlyOptions):
        check_speakers(params.num_speakers, params.min_speakers, params.max_speakers)
    vad = params if isinstance(params, TranscribeOptions | DiarizeOnlyOptions) else None
    if vad is not None and vad.vad_offset > vad.vad_onset:
        raise ApiError(422, "vad_offset must not be greater than vad_onset", "VALIDATION_ERROR", "vad_offset")
    align = params if isinstance(params, FullOptions | AlignOnlyOptions) else None
    diarize = params if isinstance(params, FullOptions | DiarizeOnlyOptions) else None
    return PipelineOptions(
        whisper=whisper,
        asr=_asr(params) if isinstance(params, TranscribeOptions) else defaults.asr,
        vad=VadOptions(
            vad_method=(vad.vad_method if vad else None) or settings.vad_method,
            vad_onset=vad.vad_onset if vad else defaults.vad.vad_onset,
            vad_offset=vad.vad_offset if vad else defaults.vad.vad_offset,
        ),
        align=AlignOptions(
            backend=(align.align_backend if align else None) or settings.align_backend,
            align_model=align.align_model if align else None,
            interpolate_method=align.interpolate_method if align else defaults.align.interpolate_method,
            return_char_alignments=align.return_char_alignments if align else False,
        ),
        diarize=DiarizeOptions(
            backend=(diarize.diarization_backend if diarize else None) or settings.diarization_backend,
            num_speakers=diarize.num_speakers if diarize else None,
            min_speakers=diarize.min_speakers if diarize else None,
            max_speakers=diarize.max_speakers if diarize else None,
            return_embeddings=diarize.return_embeddings if diarize else False,
        ),
        diarization=full.diarize if full is not None else isinstance(params, DiarizeOnlyOptions),
    )


def _whisper(params: BaseOptions, settings: Settings) -> WhisperOptions:
    model_options = params if isinstance(params, WhisperModelOptions) else None
    model = check_model((model_options.model if model_options else None) or settings.whisper_model, settings)
    asked = model_options.language if model_options else None
    language = check_language(asked if asked is not None else (settings.default_lang or None))
    task = params.task if isinstance(params, TranscribeOptions) else "transcribe"
    if model.endswith(".en"):
        if task == "translate":
            raise ApiError(
                422, f"model {model!r} is English-only and cannot translate; use a multilingual model",
                "TRANSLATION_UNSUPPORTED", "task",
            )  # fmt: skip
        if language not in (None, "en"):
            raise ApiError(
                422, f"model {model!r} is English-only; language {language!r} needs a multilingual model",
                "INVALID_LANGUAGE_CODE", "language",
            )  # fmt: skip
    transcribe = params if isinstance(params, TranscribeOptions) else None
    return WhisperOptions(
        model=model,
        language=language,
        task=task,
        device=params.device or settings.device,
        device_index=params.device_index,
        compute_type=(model_options.compute_type if model_options else None) or settings.compute_type,
        batch_size=(transcribe.batch_size if transcribe else None) or settings.batch_size,
        chunk_size=transcribe.chunk_size if transcribe else WhisperOptions.chunk_size,
        threads=model_options.threads if model_options else 0,
    )


def _asr(params: TranscribeOptions) -> AsrOptions:
    defaults = AsrOptions()
    return AsrOptions(
        beam_size=params.beam_size,
        best_of=params.best_of,
        patience=params.patience,
        length_penalty=params.length_penalty,
        temperatures=tuple(params.temperatures) if params.temperatures else defaults.temperatures,
        compression_ratio_threshold=params.compression_ratio_threshold,
        log_prob_threshold=params.log_prob_threshold,
        no_speech_threshold=params.no_speech_threshold,
        initial_prompt=params.initial_prompt,
        suppress_tokens=tuple(params.suppress_tokens) if params.suppress_tokens else defaults.suppress_tokens,
        suppress_numerals=params.suppress_numerals,
        hotwords=params.hotwords,
    )


def task_params(form: BaseOptions, task_type: TaskType, settings: Settings) -> TaskParams:
    """The checked options of a pipeline request, as its task keeps them."""
    options = build_options(form, settings)
    diarizes = task_type == TaskType.DIARIZATION or (task_type == TaskType.FULL_PROCESS and options.diarization)
    naming = build_naming(form, diarizes)
    return TaskParams(options=options, speakers=naming if naming.wanted else None)


async def check_callback(settings: Settings, url: str | None) -> str | None:
    """Refuse a callback URL that could reach the service's own network, before queueing."""
    if not url:
        return None
    try:
        await resolve_target(url, parse_networks(settings.outbound_allowed_networks))
    except OutboundError as exc:
        raise ApiError(exc.status, f"callback_url: {exc.message}", exc.code, "callback_url") from None
    return url


def build_naming(params: BaseOptions, diarizes: bool) -> SpeakerNaming:
    """What the task asks of the speaker library; asking it of a task without diarization is a 422."""
    if not isinstance(params, FullOptions | DiarizeOnlyOptions):
        return SpeakerNaming()
    naming = SpeakerNaming(params.identify_speakers, params.auto_store_speakers, params.speaker_threshold)
    if naming.wanted and not diarizes:
        param = "identify_speakers" if params.identify_speakers else "auto_store_speakers"
        raise ApiError(
            422, f"{param} needs diarization, which this request does not run (diarize=false)", "VALIDATION_ERROR",
            param,
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


def enrolment_options(settings: Settings) -> PipelineOptions:
    """An enrolment diarizes its recording as one speaker, with the service's own diarizer."""
    return build_options(DiarizeOnlyOptions(), settings)


def current_encoder(settings: Settings) -> str:
    """The speaker encoder this service diarizes and enrols with."""
    return speaker_encoder_model(settings.diarization_backend, settings.hf_token, settings.pyannote_pipeline)
