"""Endpoints that accept media (or a URL) and queue pipeline work, answering at once; and
deleting a task. Every one goes through the transcription service."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, post
from litestar.enums import RequestEncodingType
from litestar.params import Body

from whisperx_api.db.models import TaskType
from whisperx_api.media.intake import FetchMedia, StoredMedia, upload_fetcher
from whisperx_api.media.url_download import download
from whisperx_api.openapi import error_responses, query_options
from whisperx_api.pipeline.results import Transcript, Turn
from whisperx_api.settings import Settings
from whisperx_api.tasks.schemas import TaskQueued
from whisperx_api.transcription.options import check_callback, decode_json_upload, task_params
from whisperx_api.transcription.params import TaskParams
from whisperx_api.transcription.schemas import (
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
from whisperx_api.transcription.service import Submission, TranscriptionService

MULTIPART = Body(media_type=RequestEncodingType.MULTI_PART)
URL_FORM = Body(media_type=RequestEncodingType.URL_ENCODED)
BOTH_WAYS = (
    "Every option may be given as a query parameter (as the reference whisperX-FastAPI takes them) or as a "
    "form field in the body; one given both ways must have the same value in both. An unknown parameter is "
    "a 422 `UNKNOWN_PARAMETER`."
)
FULL = query_options(FullOptions, BOTH_WAYS)
UPLOAD_ERRORS = error_responses(400, 413, 415, 422, 503, 507)


async def queue(
    service: TranscriptionService, settings: Settings, form: BaseOptions, task_type: TaskType, fetch: FetchMedia,
    *, url: str | None = None, **extra: object,
) -> TaskQueued:  # fmt: skip
    """Options and callback are checked first (cheap), then the service stores the media and
    queues the task."""
    params = task_params(form, task_type, settings)
    if extra:
        params = msgspec.structs.replace(params, **extra)
    submission = Submission(
        task_type, params, fetch, url=url, callback_url=await check_callback(settings, form.callback_url),
        language=params.options.whisper.language if params.options else None,
    )  # fmt: skip
    return TaskQueued(identifier=await service.submit(submission))


def as_transcript(given: TranscriptIn) -> Transcript:
    return msgspec.convert(msgspec.to_builtins(given), Transcript)


class SpeechController(Controller):
    tags = ["Speech-2-Text"]

    @post("/speech-to-text", status_code=200, responses=UPLOAD_ERRORS, operation_class=FULL,
          summary="Transcribe, align and diarize an uploaded audio or video file (queued)")  # fmt: skip
    async def speech_to_text(
        self, transcription: TranscriptionService, settings: Settings, data: Annotated[MediaForm, MULTIPART]
    ) -> TaskQueued:
        return await queue(
            transcription, settings, data, TaskType.FULL_PROCESS, upload_fetcher(transcription.media, data.file)
        )

    @post("/speech-to-text-url", status_code=200, responses={**UPLOAD_ERRORS, **error_responses(502, 504)},
          operation_class=FULL, summary="Transcribe, align and diarize media fetched from an http(s) URL (queued)")  # fmt: skip
    async def speech_to_text_url(
        self, transcription: TranscriptionService, settings: Settings, data: Annotated[UrlForm, URL_FORM]
    ) -> TaskQueued:
        async def fetch(task_id: UUID) -> StoredMedia:
            return await download(settings, transcription.media, data.url, task_id)

        return await queue(transcription, settings, data, TaskType.FULL_PROCESS, fetch, url=data.url)


class ServiceController(Controller):
    path = "/service"
    tags = ["Services"]

    @post("/transcribe", status_code=200, responses=UPLOAD_ERRORS,
          operation_class=query_options(TranscribeOptions, BOTH_WAYS),
          summary="Transcribe an uploaded file (no alignment, no diarization; queued)")  # fmt: skip
    async def transcribe(
        self, transcription: TranscriptionService, settings: Settings, data: Annotated[TranscribeForm, MULTIPART]
    ) -> TaskQueued:
        return await queue(
            transcription, settings, data, TaskType.TRANSCRIPTION, upload_fetcher(transcription.media, data.file)
        )

    @post("/align", status_code=200, responses=UPLOAD_ERRORS,
          operation_class=query_options(AlignOnlyOptions, BOTH_WAYS),
          summary="Word timings for a given transcript (JSON file `transcript`) and its audio (queued)")  # fmt: skip
    async def align(
        self, transcription: TranscriptionService, settings: Settings, data: Annotated[AlignForm, MULTIPART]
    ) -> TaskQueued:
        transcript = decode_json_upload(await data.transcript.read(), TranscriptIn, "transcript")
        return await queue(
            transcription, settings, data, TaskType.TRANSCRIPTION_ALIGNMENT, upload_fetcher(transcription.media, data.file),
            transcript=as_transcript(transcript),
        )  # fmt: skip

    @post("/diarize", status_code=200, responses=UPLOAD_ERRORS,
          operation_class=query_options(DiarizeOnlyOptions, BOTH_WAYS),
          summary="Who spoke when: speaker turns of an uploaded file (queued)")  # fmt: skip
    async def diarize(
        self, transcription: TranscriptionService, settings: Settings, data: Annotated[DiarizeForm, MULTIPART]
    ) -> TaskQueued:
        return await queue(
            transcription, settings, data, TaskType.DIARIZATION, upload_fetcher(transcription.media, data.file)
        )

    @post("/combine", status_code=200, responses=error_responses(400, 413, 422, 503),
          summary="Assign speakers to an aligned transcript from a diarization result (queued; no audio)")  # fmt: skip
    async def combine(
        self, transcription: TranscriptionService, settings: Settings, data: Annotated[CombineForm, MULTIPART]
    ) -> TaskQueued:
        transcript = decode_json_upload(await data.aligned_transcript.read(), TranscriptIn, "aligned_transcript")
        # accept both our diarization result ({"segments": [...]}) and a bare list of turns
        diarization = decode_json_upload(
            await data.diarization_result.read(), DiarizationIn | list[TurnIn], "diarization_result"
        )
        turns = diarization.segments if isinstance(diarization, DiarizationIn) else diarization
        params = TaskParams(
            transcript=as_transcript(transcript), diarization=msgspec.convert(msgspec.to_builtins(turns), list[Turn])
        )
        submission = Submission(
            TaskType.COMBINE, params, callback_url=await check_callback(settings, data.callback_url),
            language=transcript.language,
        )  # fmt: skip
        return TaskQueued(identifier=await transcription.submit(submission))

    @post("/probe", status_code=200, responses=UPLOAD_ERRORS,
          summary="Queue a media probe (duration, codec, streams) of an uploaded file")  # fmt: skip
    async def probe(self, transcription: TranscriptionService, data: Annotated[ProbeForm, MULTIPART]) -> TaskQueued:
        submission = Submission(TaskType.MEDIA_PROBE, TaskParams(), upload_fetcher(transcription.media, data.file))
        return TaskQueued(identifier=await transcription.submit(submission))
