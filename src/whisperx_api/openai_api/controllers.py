"""OpenAI-compatible synchronous endpoints: the response body is the transcript.

Each request is also a task row (processing -> completed | failed), visible under /task, and its
model calls share the process's compute limit with the queued pipeline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Stream

from whisperx_api.db.models import TaskStatus, TaskType
from whisperx_api.errors import ApiError
from whisperx_api.openai_api.formatting import full_text, verbose
from whisperx_api.openai_api.schemas import Model, ModelList, Transcript, TranscriptionForm, TranslationForm
from whisperx_api.openapi import error_responses
from whisperx_api.pipeline.errors import PipelineError
from whisperx_api.pipeline.formats import render_srt, render_vtt
from whisperx_api.pipeline.models import HUB_MODEL_NAMES, hub_offline_cached, local_model_names
from whisperx_api.pipeline.options import AlignOptions, AsrOptions, PipelineOptions, VadOptions, WhisperOptions
from whisperx_api.runtime import Runtime
from whisperx_api.speech.options import check_language, check_model
from whisperx_api.speech.uploads import new_task_id, overloaded, store_upload
from whisperx_api.tasks.store import insert_task, update_task

logger = logging.getLogger(__name__)

MULTIPART = Body(media_type=RequestEncodingType.MULTI_PART)
OPENAI_ALIAS = "whisper-1"
# fields of OpenAI's transcription request that the official SDK sends when asked to, and this
# service does not implement (yet): refused with a reason, never ignored
NOT_YET_SUPPORTED = {
    "include[]": "not supported yet (logprobs are not returned)",
    "chunking_strategy": "not supported yet; the service always splits audio by voice activity",
    "known_speaker_names[]": "not supported yet; enrol voices under /speakers and use /speech-to-text",
    "known_speaker_references[]": "not supported yet; enrol voices under /speakers and use /speech-to-text",
}
V1_ERRORS = error_responses(400, 401, 413, 415, 429, 500, 503)


def resolve_model(name: str, runtime: Runtime) -> str:
    target = runtime.settings.whisper_model if name == OPENAI_ALIAS else name
    try:
        return check_model(target, runtime.settings)
    except ApiError as exc:
        raise ApiError(400, exc.message, "model_not_found", "model") from None


def _as_400(exc: ApiError) -> ApiError:
    """OpenAI reports every invalid request (bad file type included) as 400; 413 stays 413."""
    status = 400 if exc.status_code in (415, 422) else exc.status_code
    return ApiError(status, exc.message, exc.code, exc.param)


class SyncJob:
    """One synchronous request: its options, task row, media, and the pipeline run."""

    def __init__(self, runtime: Runtime, task_id: UUID, options: PipelineOptions, media: str, align: bool) -> None:
        self.runtime, self.task_id, self.options, self.media, self.align = runtime, task_id, options, media, align
        self.started = time.monotonic()

    async def run(self, on_segment: Any = None) -> dict[str, Any]:
        engine = self.runtime.engine
        try:
            return await engine.run(
                Path(self.media), self.options, lambda _s, _f: None, align=self.align, diarize=False,
                on_segment=on_segment,
            )  # fmt: skip
        finally:
            self.runtime.media.delete(self.media)
            await self.runtime.admission.release("sync", str(self.task_id))

    async def completed(self, result: dict[str, Any]) -> None:
        await update_task(
            self.runtime, self.task_id, status=TaskStatus.COMPLETED.value, result=result, progress=1.0, stage="done",
            language=result.get("language"), audio_duration=result.get("duration"), finished_at=datetime.now(UTC),
            processing_duration=round(time.monotonic() - self.started, 3),
        )  # fmt: skip

    async def failed(self, message: str, code: str) -> None:
        await update_task(
            self.runtime, self.task_id, status=TaskStatus.FAILED.value, error_message=message, error_code=code,
            finished_at=datetime.now(UTC), processing_duration=round(time.monotonic() - self.started, 3),
        )  # fmt: skip


async def start_job(
    runtime: Runtime, form: TranscriptionForm | TranslationForm, task: str, language: str | None, align: bool
) -> SyncJob:
    settings = runtime.settings
    model = resolve_model(form.model, runtime)
    if task == "translate" and model.endswith(".en"):
        raise ApiError(400, f"model {model!r} is English-only and cannot translate", "model_not_multilingual", "model")
    if language not in (None, "en") and model.endswith(".en"):
        raise ApiError(
            400,
            f"model {model!r} is English-only; language {language!r} needs a multilingual model",
            "INVALID_LANGUAGE_CODE",
            "language",
        )
    defaults = AsrOptions()
    options = PipelineOptions(
        whisper=WhisperOptions(model=model, language=language, task=task, device=settings.device,  # type: ignore[arg-type]
                               compute_type=settings.compute_type, batch_size=settings.batch_size),
        asr=AsrOptions(initial_prompt=form.prompt,
                       temperatures=(form.temperature,) if form.temperature is not None else defaults.temperatures),
        vad=VadOptions(vad_method=settings.vad_method),
        align=AlignOptions(backend=settings.align_backend),
        diarization=False,
    )  # fmt: skip
    task_id = new_task_id()
    if not await runtime.admission.acquire("sync", str(task_id)):
        raise overloaded("sync")
    try:
        media, info = await store_upload(runtime, form.file, task_id)
    except ApiError as exc:
        await runtime.admission.release("sync", str(task_id))
        raise _as_400(exc) from None
    task_type = TaskType.OPENAI_TRANSLATION if task == "translate" else TaskType.OPENAI_TRANSCRIPTION
    await insert_task(
        runtime, id=task_id, status=TaskStatus.PROCESSING.value, task_type=task_type.value, attempts=1,
        params={"options": options.as_dict(), "response_format": form.response_format}, media_path=media,
        file_name=form.file.filename, audio_duration=info.duration, language=language, started_at=datetime.now(UTC),
    )  # fmt: skip
    return SyncJob(runtime, task_id, options, media, align)


async def finish(job: SyncJob, response_format: str, task: str, words: bool) -> Response[Any]:
    try:
        result = await job.run()
    except PipelineError as exc:
        await job.failed(exc.message, exc.code)
        client_side = {"AUDIO_PROCESSING_ERROR", "INVALID_LANGUAGE_CODE", "TRANSLATION_UNSUPPORTED", "MODEL_NOT_FOUND"}
        code = "model_not_found" if exc.code == "MODEL_NOT_FOUND" else exc.code
        raise ApiError(400 if exc.code in client_side else 500, exc.message, code) from None
    except Exception as exc:
        await job.failed(str(exc) or type(exc).__name__, "INTERNAL_ERROR")
        raise
    await job.completed(result)
    headers = {"X-Task-ID": str(job.task_id)}
    if response_format == "json":
        return Response(Transcript(text=full_text(result)), headers=headers)
    if response_format == "verbose_json":
        return Response(verbose(result, "translate" if task == "translate" else "transcribe", words), headers=headers)
    if response_format == "text":
        return Response(full_text(result) + "\n", media_type="text/plain; charset=utf-8", headers=headers)
    if response_format == "srt":
        return Response(
            render_srt(result["segments"]), media_type="application/x-subrip; charset=utf-8", headers=headers
        )
    return Response(render_vtt(result["segments"]), media_type="text/vtt; charset=utf-8", headers=headers)


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def stream_events(job: SyncJob) -> AsyncIterator[bytes]:
    """transcript.text.delta per decoded window, then transcript.text.done (OpenAI's streaming shape)."""
    loop = asyncio.get_running_loop()
    segments: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    work = asyncio.ensure_future(job.run(on_segment=lambda s: loop.call_soon_threadsafe(segments.put_nowait, s)))
    first = True
    while not (work.done() and segments.empty()):
        getter = asyncio.ensure_future(segments.get())
        await asyncio.wait({getter, work}, return_when=asyncio.FIRST_COMPLETED)
        if not getter.done():
            getter.cancel()
            continue
        text = str(getter.result()["text"]).strip()
        if text:
            yield _sse({"type": "transcript.text.delta", "delta": text if first else " " + text})
            first = False
    try:
        result = work.result()
    except PipelineError as exc:
        await job.failed(exc.message, exc.code)
        yield _sse({"error": {"message": exc.message, "type": "server_error", "code": exc.code, "param": None}})
        return
    except Exception as exc:
        logger.exception("streaming transcription failed")
        await job.failed(str(exc) or type(exc).__name__, "INTERNAL_ERROR")
        yield _sse(
            {
                "error": {
                    "message": "internal server error",
                    "type": "server_error",
                    "code": "INTERNAL_ERROR",
                    "param": None,
                }
            }
        )
        return
    await job.completed(result)
    yield _sse({"type": "transcript.text.done", "text": full_text(result)})
    yield b"data: [DONE]\n\n"


class OpenAIController(Controller):
    path = "/v1"
    tags = ["OpenAI-compatible"]
    # OpenAI answers every invalid request, unknown parameters included, with 400 (parameters.py)
    opt = {"client_error_status": 400}

    @post("/audio/transcriptions", status_code=200, responses=V1_ERRORS,
          summary="Transcribe audio (OpenAI-compatible, synchronous; stream=true for server-sent events)",
          opt={"unsupported_parameters": NOT_YET_SUPPORTED})  # fmt: skip
    async def transcriptions(self, runtime: Runtime, data: Annotated[TranscriptionForm, MULTIPART]) -> Response[Any]:
        granularities = set(data.timestamp_granularities or ["segment"])
        if "word" in granularities and data.response_format != "verbose_json":
            raise ApiError(
                400,
                "timestamp_granularities[]=word needs response_format=verbose_json",
                "invalid_value",
                "timestamp_granularities[]",
            )
        try:
            language = check_language(data.language)
        except ApiError as exc:
            raise _as_400(exc) from None
        words = "word" in granularities
        align = data.response_format in ("srt", "vtt") or (data.response_format == "verbose_json")
        job = await start_job(runtime, data, "transcribe", language, align and not data.stream)
        if data.stream:
            return Stream(
                stream_events(job),
                media_type="text/event-stream",
                headers={"X-Task-ID": str(job.task_id), "Cache-Control": "no-cache"},
            )
        return await finish(job, data.response_format, "transcribe", words)

    @post("/audio/translations", status_code=200, responses=V1_ERRORS,
          summary="Translate audio into English text (OpenAI-compatible, synchronous)")  # fmt: skip
    async def translations(self, runtime: Runtime, data: Annotated[TranslationForm, MULTIPART]) -> Response[Any]:
        job = await start_job(runtime, data, "translate", None, data.response_format in ("srt", "vtt", "verbose_json"))
        return await finish(job, data.response_format, "translate", False)

    @get("/models", summary="Whisper models this service can serve")
    async def models(self, runtime: Runtime) -> ModelList:
        return ModelList(data=[Model(id=name) for name in await asyncio.to_thread(servable_models, runtime)])

    @get("/models/{model_id:str}", summary="One servable model", responses=error_responses(404))
    async def model(self, runtime: Runtime, model_id: str) -> Model:
        if model_id not in await asyncio.to_thread(servable_models, runtime):
            raise ApiError(404, f"the model {model_id!r} does not exist", "model_not_found", "model")
        return Model(id=model_id)


def servable_models(runtime: Runtime) -> list[str]:
    """whisper-1 (the alias of WHISPER_MODEL), every local model, and hub models when reachable."""
    names = [OPENAI_ALIAS, *local_model_names(runtime.settings.resolved_models_dir)]
    if not hub_offline_cached():
        names += [n for n in HUB_MODEL_NAMES if n not in names]
    return names
