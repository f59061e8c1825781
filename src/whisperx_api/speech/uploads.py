"""Accepting media: extension check, streaming to the store, probing before anything is queued."""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePath
from typing import Any
from uuid import UUID, uuid4

from litestar.datastructures import UploadFile

from whisperx_api.db.models import TaskStatus
from whisperx_api.errors import ApiError
from whisperx_api.pipeline.audio import ALLOWED_EXTENSIONS, MediaInfo, probe_media
from whisperx_api.pipeline.errors import AudioProcessingError
from whisperx_api.runtime import Runtime
from whisperx_api.security.admission import RETRY_AFTER_S
from whisperx_api.tasks.queue import enqueue_task
from whisperx_api.tasks.store import insert_task


def media_suffix(file_name: str | None) -> str:
    suffix = PurePath(file_name or "").suffix.lower()
    if suffix not in ALLOWED_EXTENSIONS:
        raise ApiError(
            415,
            f"unsupported file type {suffix or '(none)'!r}; allowed: {', '.join(ALLOWED_EXTENSIONS)}",
            "UNSUPPORTED_FILE_TYPE",
            "file",
        )
    return suffix


async def store_upload(runtime: Runtime, upload: UploadFile, task_id: UUID) -> tuple[str, MediaInfo]:
    """Save the upload and probe it; a bad file is deleted and reported before any task exists."""
    suffix = media_suffix(upload.filename)
    path, _size = await runtime.media.save(upload.file, task_id, suffix)  # type: ignore[arg-type]
    return str(path), await probe_stored(runtime, str(path), "file")


async def probe_stored(runtime: Runtime, path: str, param: str) -> MediaInfo:
    """Probe stored media; unusable media is deleted and reported as a 400 before anything is queued."""
    try:
        return await asyncio.to_thread(probe_media, Path(path))
    except AudioProcessingError as exc:
        runtime.media.delete(path)
        raise ApiError(400, exc.message, exc.code, param) from None


async def create_and_enqueue(
    runtime: Runtime,
    *,
    task_id: UUID,
    task_type: str,
    params: dict[str, Any],
    media_path: str | None = None,
    file_name: str | None = None,
    url: str | None = None,
    callback_url: str | None = None,
    audio_duration: float | None = None,
    language: str | None = None,
) -> UUID:
    """Claim an admission slot, commit the task row, then enqueue (the worker must see the row)."""
    if not await runtime.admission.acquire("async", str(task_id)):
        runtime.media.delete(media_path)
        raise overloaded("async")
    await insert_task(
        runtime, id=task_id, status=TaskStatus.QUEUED.value, task_type=task_type, params=params, media_path=media_path,
        file_name=file_name, url=url, callback_url=callback_url, audio_duration=audio_duration, language=language,
    )  # fmt: skip
    await enqueue_task(runtime, task_id)
    return task_id


def overloaded(path: str) -> ApiError:
    return ApiError(
        503, f"the service is at its limit of in-flight {path} transcription requests; retry later",
        "SERVICE_OVERLOADED", headers={"Retry-After": str(RETRY_AFTER_S)},
    )  # fmt: skip


def new_task_id() -> UUID:
    return uuid4()
