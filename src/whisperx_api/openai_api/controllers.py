"""OpenAI-compatible synchronous endpoints: the response body is the transcript.

Each request is also a task row (processing -> completed | failed), visible under /task, and its
model calls share the process's compute limit with the queued pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Stream

from whisperx_api.db.models import TaskStatus, TaskType
from whisperx_api.errors import ApiError
from whisperx_api.media.intake import upload_fetcher
from whisperx_api.openai_api.chunking import chunking_strategy, with_chunking
from whisperx_api.openai_api.formatting import diarized, diarized_segments, lettered, usage, verbose
from whisperx_api.openai_api.known_speakers import discard, known_speakers
from whisperx_api.openai_api.schemas import Model, ModelList, TextOnly, TranscriptionForm, TranslationForm
from whisperx_api.openapi import error_responses
from whisperx_api.pipeline.formats import render_srt, render_vtt
from whisperx_api.pipeline.models import HUB_MODEL_NAMES, hub_offline_cached, local_model_names
from whisperx_api.pipeline.results import Segment, Transcript
from whisperx_api.settings import Settings
from whisperx_api.transcription.options import build_options, check_language, check_model
from whisperx_api.transcription.params import KnownSpeaker, TaskParams
from whisperx_api.transcription.schemas import FullOptions
from whisperx_api.transcription.service import CLIENT_ERRORS, Submission, TranscriptionService

logger = logging.getLogger(__name__)

MULTIPART = Body(media_type=RequestEncodingType.MULTI_PART)
OPENAI_ALIAS = "whisper-1"
# OpenAI's newer transcription models: served by WHISPER_MODEL too, as whisper-1 is; the diarize
# one asks for speakers (as response_format=diarized_json does with any model)
DIARIZE_MODEL = "gpt-4o-transcribe-diarize"
ALIASES = (OPENAI_ALIAS, "gpt-4o-transcribe", "gpt-4o-mini-transcribe", DIARIZE_MODEL)
KEEP_ALIVE_S = 1.0  # a streamed /v1 response says something at least this often
V1_ERRORS = error_responses(400, 401, 413, 415, 429, 500, 503)


def resolve_model(name: str, settings: Settings) -> str:
    target = settings.whisper_model if name in ALIASES else name
    try:
        return check_model(target, settings)
    except ApiError as exc:
        raise ApiError(400, exc.message, "model_not_found", "model") from None


def _as_400(exc: ApiError) -> ApiError:
    """OpenAI reports every invalid request (bad file type included) as 400; 413 stays 413."""
    status = 400 if exc.status_code in (415, 422) else exc.status_code
    code = "model_not_found" if exc.code == "MODEL_NOT_FOUND" else exc.code
    return ApiError(status, exc.message, code, exc.param, exc.headers)


async def submit(
    service: TranscriptionService, settings: Settings, form: TranscriptionForm | TranslationForm, task: str,
    language: str | None, align: bool, diarize: bool = False, known: list[KnownSpeaker] | None = None,
) -> UUID:  # fmt: skip
    """The request as an inline task (processing), its options checked and its upload stored."""
    model = resolve_model(form.model, settings)
    if task == "translate" and model.endswith(".en"):
        raise ApiError(400, f"model {model!r} is English-only and cannot translate", "model_not_multilingual", "model")
    asked = FullOptions(
        model=model, language=language, task=task,  # type: ignore[arg-type]
        initial_prompt=form.prompt, temperatures=[form.temperature] if form.temperature is not None else None,
        diarize=diarize,
    )  # fmt: skip
    try:
        options = build_options(asked, settings)
        if isinstance(form, TranscriptionForm):
            strategy = chunking_strategy(form.chunking_strategy, form.chunking_parts())
            wanted = "logprobs" in (form.include or [])
            options = dataclasses.replace(options, vad=with_chunking(options.vad, strategy), token_logprobs=wanted)
        task_type = TaskType.OPENAI_TRANSLATION if task == "translate" else TaskType.OPENAI_TRANSCRIPTION
        params = TaskParams(
            options=options, response_format=form.response_format, align=align or diarize, known_speakers=known or None
        )
        return await service.submit(
            Submission(task_type, params, upload_fetcher(service.media, form.file), language=language)
        )
    except ApiError as exc:
        raise _as_400(exc) from None


async def outcome_of(service: TranscriptionService, task_id: UUID) -> Transcript:
    outcome = await service.run_inline(task_id)
    try:
        result = outcome.raise_for_client(400)
    except ApiError as exc:
        raise _as_400(exc) from None
    assert isinstance(result, Transcript)
    return result


def respond(task_id: UUID, result: Transcript, response_format: str, task: str, words: bool) -> Response[Any]:
    """The body in the asked format; speakers (when diarized) as OpenAI labels them."""
    headers = {"X-Task-ID": str(task_id)}
    result = lettered(result)
    if response_format == "json":
        return Response(TextOnly(text=result.text, usage=usage(result), logprobs=result.logprobs), headers=headers)
    if response_format == "diarized_json":
        return Response(diarized(result), headers=headers)
    if response_format == "verbose_json":
        return Response(verbose(result, "translate" if task == "translate" else "transcribe", words), headers=headers)
    if response_format == "text":
        return Response(result.text + "\n", media_type="text/plain; charset=utf-8", headers=headers)
    if response_format == "srt":
        return Response(render_srt(result.segments), media_type="application/x-subrip; charset=utf-8", headers=headers)
    return Response(render_vtt(result.segments), media_type="text/vtt; charset=utf-8", headers=headers)


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def stream_events(service: TranscriptionService, task_id: UUID, speakers: bool) -> AsyncIterator[bytes]:
    """transcript.text.delta per decoded window, then (with `speakers`) a transcript.text.segment
    per segment with its speaker once the speakers are known, then transcript.text.done with the
    usage (OpenAI's streaming shape). A client that goes away ends the task as
    CLIENT_DISCONNECTED (run_inline)."""
    loop = asyncio.get_running_loop()
    segments: asyncio.Queue[Segment] = asyncio.Queue()

    def on_segment(segment: Segment) -> None:  # on the inference process's reader thread
        loop.call_soon_threadsafe(segments.put_nowait, segment)

    work = asyncio.ensure_future(service.run_inline(task_id, on_segment=on_segment))
    try:
        first = True
        while not (work.done() and segments.empty()):
            getter = asyncio.ensure_future(segments.get())
            await asyncio.wait({getter, work}, timeout=KEEP_ALIVE_S, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                if not work.done():
                    # an SSE comment (clients skip it): writing it is what finds a client that
                    # has gone while no event was due, so its task ends within seconds
                    yield b": keep-alive\n\n"
                continue
            text = getter.result().text.strip()
            if text:
                yield _sse({"type": "transcript.text.delta", "delta": text if first else " " + text})
                first = False
        outcome = work.result()
    finally:
        if not work.done():  # the client went away: the generator is closed mid-stream
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
    if outcome.status != TaskStatus.COMPLETED or not isinstance(outcome.result, Transcript):
        server = outcome.error_code not in CLIENT_ERRORS
        yield _sse({
            "error": {
                "message": outcome.error_message or "the transcription failed",
                "type": "server_error" if server else "invalid_request_error",
                "code": outcome.error_code, "param": None,
            }
        })  # fmt: skip
        return
    result = lettered(outcome.result)
    if speakers:
        for segment in diarized_segments(result):
            yield _sse(msgspec.to_builtins(segment))
    done: dict[str, Any] = {
        "type": "transcript.text.done",
        "text": result.text,
        "usage": msgspec.to_builtins(usage(result)),
    }
    if result.logprobs:
        done["logprobs"] = msgspec.to_builtins(result.logprobs)
    yield _sse(done)
    yield b"data: [DONE]\n\n"


class OpenAIController(Controller):
    path = "/v1"
    tags = ["OpenAI-compatible"]
    # OpenAI answers every invalid request, unknown parameters included, with 400 (parameters.py)
    opt = {"client_error_status": 400}

    @post("/audio/transcriptions", status_code=200, responses=V1_ERRORS,
          summary="Transcribe audio (OpenAI-compatible, synchronous; stream=true for server-sent events)")  # fmt: skip
    async def transcriptions(
        self, transcription: TranscriptionService, settings: Settings, data: Annotated[TranscriptionForm, MULTIPART]
    ) -> Response[Any]:
        granularities = set(data.timestamp_granularities or ["segment"])
        if "word" in granularities and data.response_format != "verbose_json":
            raise ApiError(
                400,
                "timestamp_granularities[]=word needs response_format=verbose_json",
                "invalid_value",
                "timestamp_granularities[]",
            )
        if data.include and data.response_format != "json":
            raise ApiError(400, "include[]=logprobs needs response_format=json", "invalid_value", "include[]")
        try:
            language = check_language(data.language)
        except ApiError as exc:
            raise _as_400(exc) from None
        words = "word" in granularities
        align = data.response_format in ("srt", "vtt", "verbose_json") and not data.stream
        known = await known_speakers(
            data.known_speaker_names, data.known_speaker_references, data.store_known_speakers, transcription.media
        )
        speakers = data.response_format == "diarized_json" or data.model == DIARIZE_MODEL or bool(known)
        try:
            task_id = await submit(transcription, settings, data, "transcribe", language, align, speakers, known)
        except BaseException:
            await discard(known, transcription.media)
            raise
        if data.stream:
            return Stream(
                stream_events(transcription, task_id, speakers), media_type="text/event-stream",
                headers={"X-Task-ID": str(task_id), "Cache-Control": "no-cache"},
            )  # fmt: skip
        result = await outcome_of(transcription, task_id)
        return respond(task_id, result, data.response_format, "transcribe", words)

    @post("/audio/translations", status_code=200, responses=V1_ERRORS,
          summary="Translate audio into English text (OpenAI-compatible, synchronous)")  # fmt: skip
    async def translations(
        self, transcription: TranscriptionService, settings: Settings, data: Annotated[TranslationForm, MULTIPART]
    ) -> Response[Any]:
        align = data.response_format in ("srt", "vtt", "verbose_json")
        task_id = await submit(transcription, settings, data, "translate", None, align)
        result = await outcome_of(transcription, task_id)
        return respond(task_id, result, data.response_format, "translate", False)

    @get("/models", summary="Whisper models this service can serve")
    async def models(self, settings: Settings) -> ModelList:
        return ModelList(data=[Model(id=name) for name in await asyncio.to_thread(servable_models, settings)])

    @get("/models/{model_id:str}", summary="One servable model", responses=error_responses(404))
    async def model(self, settings: Settings, model_id: str) -> Model:
        if model_id not in await asyncio.to_thread(servable_models, settings):
            raise ApiError(404, f"the model {model_id!r} does not exist", "model_not_found", "model")
        return Model(id=model_id)


def servable_models(settings: Settings) -> list[str]:
    """whisper-1 and OpenAI's newer names (aliases of WHISPER_MODEL), every local model, and hub
    models when reachable."""
    names = [*ALIASES, *local_model_names(settings.resolved_models_dir)]
    if not hub_offline_cached():
        names += [n for n in HUB_MODEL_NAMES if n not in names]
    return names
