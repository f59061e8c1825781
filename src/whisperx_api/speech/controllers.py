"""Endpoints that accept media (or a URL) and queue pipeline work; they answer at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, post
from litestar.enums import RequestEncodingType
from litestar.params import Body

from whisperx_api.db.models import TaskType
from whisperx_api.errors import ApiError
from whisperx_api.openapi import error_responses, query_options
from whisperx_api.pipeline.audio import MediaInfo
from whisperx_api.pipeline.options import PipelineOptions
from whisperx_api.runtime import Runtime
from whisperx_api.security.outbound import OutboundError, parse_networks, resolve_target
from whisperx_api.settings import Settings
from whisperx_api.speech.options import build_naming, build_options, decode_json_upload
from whisperx_api.speech.schemas import (
    AlignForm,
    AlignOnlyOptions,
    BaseOptions,
    CombineForm,
    DiarizationIn,
    DiarizeForm,
    DiarizeOnlyOptions,
    FullOptions,
    MediaForm,
    ProbeForm,
    TranscribeForm,
    TranscribeOptions,
    TranscriptIn,
    TurnIn,
    UrlForm,
)
from whisperx_api.speech.uploads import create_and_enqueue, new_task_id, probe_stored, store_upload
from whisperx_api.speech.url_download import download
from whisperx_api.tasks.schemas import TaskQueued

MULTIPART = Body(media_type=RequestEncodingType.MULTI_PART)
BOTH_WAYS = (
    "Every option may be given as a query parameter (as the reference whisperX-FastAPI takes them) or as a "
    "form field in the body; one given both ways must have the same value in both. An unknown parameter is "
    "a 422 `UNKNOWN_PARAMETER`."
)
FULL = query_options(FullOptions, BOTH_WAYS)
URL_FORM = Body(media_type=RequestEncodingType.URL_ENCODED)
UPLOAD_ERRORS = error_responses(400, 413, 415, 422, 503)


async def check_callback(runtime: Runtime, url: str | None) -> str | None:
    """Refuse a callback URL that could reach the service's own network, before queueing."""
    if not url:
        return None
    try:
        await resolve_target(url, parse_networks(runtime.settings.outbound_allowed_networks))
    except OutboundError as exc:
        raise ApiError(exc.status, f"callback_url: {exc.message}", exc.code, "callback_url") from None
    return url


def task_params(
    form: BaseOptions, task_type: TaskType, settings: Settings
) -> tuple[PipelineOptions, dict[str, Any]]:
    """Checked options of a pipeline task and the parameters its job will get."""
    options = build_options(form, settings)
    diarizes = task_type == TaskType.DIARIZATION or (task_type == TaskType.FULL_PROCESS and options.diarization)
    params: dict[str, Any] = {"options": options.as_dict()}
    naming = build_naming(form, diarizes)
    if naming.wanted:
        params["speakers"] = naming.as_dict()
    return options, params


# stores a task's media under its id: (stored path, file name, what the probe found)
FetchMedia = Callable[[UUID], Awaitable[tuple[str, str | None, MediaInfo]]]


async def queue_media(
    runtime: Runtime, form: BaseOptions, task_type: TaskType, fetch: FetchMedia, *,
    extra: dict[str, Any] | None = None, url: str | None = None,
) -> TaskQueued:  # fmt: skip
    """Check the options and callback first (cheap), then store the media, then queue the task."""
    options, params = task_params(form, task_type, runtime.settings)
    callback = await check_callback(runtime, form.callback_url)
    task_id = new_task_id()
    path, name, info = await fetch(task_id)
    await create_and_enqueue(
        runtime, task_id=task_id, task_type=task_type.value, params={**params, **(extra or {})},
        media_path=path, file_name=name, url=url, callback_url=callback, audio_duration=info.duration,
        language=options.whisper.language,
    )  # fmt: skip
    return TaskQueued(identifier=task_id)


async def queue_upload(
    runtime: Runtime, form: MediaForm | TranscribeForm | AlignForm | DiarizeForm, task_type: TaskType,
    extra: dict[str, Any] | None = None,
) -> TaskQueued:
    async def store(task_id: UUID) -> tuple[str, str | None, MediaInfo]:
        path, info = await store_upload(runtime, form.file, task_id)
        return path, form.file.filename, info

    return await queue_media(runtime, form, task_type, store, extra=extra)


class SpeechController(Controller):
    tags = ["Speech-2-Text"]

    @post("/speech-to-text", status_code=200, responses=UPLOAD_ERRORS, operation_class=FULL,
          summary="Transcribe, align and diarize an uploaded audio or video file (queued)")  # fmt: skip
    async def speech_to_text(self, runtime: Runtime, data: Annotated[MediaForm, MULTIPART]) -> TaskQueued:
        return await queue_upload(runtime, data, TaskType.FULL_PROCESS)

    @post("/speech-to-text-url", status_code=200, responses={**UPLOAD_ERRORS, **error_responses(502, 504)},
          operation_class=FULL, summary="Transcribe, align and diarize media fetched from an http(s) URL (queued)")  # fmt: skip
    async def speech_to_text_url(self, runtime: Runtime, data: Annotated[UrlForm, URL_FORM]) -> TaskQueued:
        async def fetch(task_id: UUID) -> tuple[str, str | None, MediaInfo]:
            path, name = await download(runtime, data.url, task_id)
            return path, name, await probe_stored(runtime, path, "url")

        return await queue_media(runtime, data, TaskType.FULL_PROCESS, fetch, url=data.url)


class ServiceController(Controller):
    path = "/service"
    tags = ["Services"]

    @post("/transcribe", status_code=200, responses=UPLOAD_ERRORS,
          operation_class=query_options(TranscribeOptions, BOTH_WAYS),
          summary="Transcribe an uploaded file (no alignment, no diarization; queued)")  # fmt: skip
    async def transcribe(self, runtime: Runtime, data: Annotated[TranscribeForm, MULTIPART]) -> TaskQueued:
        return await queue_upload(runtime, data, TaskType.TRANSCRIPTION)

    @post("/align", status_code=200, responses=UPLOAD_ERRORS,
          operation_class=query_options(AlignOnlyOptions, BOTH_WAYS),
          summary="Word timings for a given transcript (JSON file `transcript`) and its audio (queued)")  # fmt: skip
    async def align(self, runtime: Runtime, data: Annotated[AlignForm, MULTIPART]) -> TaskQueued:
        transcript = decode_json_upload(await data.transcript.read(), TranscriptIn, "transcript")
        return await queue_upload(
            runtime, data, TaskType.TRANSCRIPTION_ALIGNMENT, {"transcript": msgspec.to_builtins(transcript)}
        )

    @post("/diarize", status_code=200, responses=UPLOAD_ERRORS,
          operation_class=query_options(DiarizeOnlyOptions, BOTH_WAYS),
          summary="Who spoke when: speaker turns of an uploaded file (queued)")  # fmt: skip
    async def diarize(self, runtime: Runtime, data: Annotated[DiarizeForm, MULTIPART]) -> TaskQueued:
        return await queue_upload(runtime, data, TaskType.DIARIZATION)

    @post("/combine", status_code=200, responses=error_responses(400, 413, 422, 503),
          summary="Assign speakers to an aligned transcript from a diarization result (queued; no audio)")  # fmt: skip
    async def combine(self, runtime: Runtime, data: Annotated[CombineForm, MULTIPART]) -> TaskQueued:
        transcript = decode_json_upload(await data.aligned_transcript.read(), TranscriptIn, "aligned_transcript")
        # accept both our diarization result ({"segments": [...]}) and a bare list of turns
        diarization = decode_json_upload(
            await data.diarization_result.read(), DiarizationIn | list[TurnIn], "diarization_result"
        )
        turns = diarization.segments if isinstance(diarization, DiarizationIn) else diarization
        callback = await check_callback(runtime, data.callback_url)
        task_id = new_task_id()
        await create_and_enqueue(
            runtime, task_id=task_id, task_type=TaskType.COMBINE.value, callback_url=callback,
            params={"transcript": msgspec.to_builtins(transcript), "diarization": msgspec.to_builtins(turns)},
            language=getattr(transcript, "language", None),
        )  # fmt: skip
        return TaskQueued(identifier=task_id)

    @post("/probe", status_code=200, responses=UPLOAD_ERRORS,
          summary="Queue a media probe (duration, codec, streams) of an uploaded file")  # fmt: skip
    async def probe(self, runtime: Runtime, data: Annotated[ProbeForm, MULTIPART]) -> TaskQueued:
        task_id = new_task_id()
        path, info = await store_upload(runtime, data.file, task_id)
        await create_and_enqueue(
            runtime, task_id=task_id, task_type=TaskType.MEDIA_PROBE.value, params={}, media_path=path,
            file_name=data.file.filename, audio_duration=info.duration,
        )  # fmt: skip
        return TaskQueued(identifier=task_id)
