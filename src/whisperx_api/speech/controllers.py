"""Endpoints that accept media and queue work."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body

from whisperx_api.db.models import TaskType
from whisperx_api.openapi import error_responses
from whisperx_api.runtime import Runtime
from whisperx_api.speech.schemas import ProbeForm
from whisperx_api.speech.uploads import create_and_enqueue, new_task_id, store_upload
from whisperx_api.tasks.schemas import TaskQueued

MULTIPART = Body(media_type=RequestEncodingType.MULTI_PART)


class ServiceController(Controller):
    path = "/service"
    tags = ["Services"]

    @post(
        "/probe",
        status_code=200,
        summary="Queue a media probe (duration, codec, streams) of an uploaded file",
        responses=error_responses(400, 413, 415, 422),
    )
    async def probe(self, runtime: Runtime, data: Annotated[ProbeForm, MULTIPART]) -> TaskQueued:
        task_id = new_task_id()
        path, info = await store_upload(runtime, data.file, task_id)
        await create_and_enqueue(
            runtime,
            task_id=task_id,
            task_type=TaskType.MEDIA_PROBE.value,
            params={},
            media_path=path,
            file_name=data.file.filename,
            audio_duration=info.duration,
        )
        return TaskQueued(identifier=task_id)


__all__ = ["ServiceController", "UploadFile"]
