"""Accepting media: extension check, streaming to the store, probing before anything is queued."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePath
from uuid import UUID

from litestar.datastructures import UploadFile

from whisperx_api.errors import ApiError
from whisperx_api.media.storage import MediaStore
from whisperx_api.pipeline.audio import ALLOWED_EXTENSIONS, MediaInfo, probe_media
from whisperx_api.pipeline.errors import AudioProcessingError


@dataclass(frozen=True)
class StoredMedia:
    """Media in the store under a task's id: where, its name as the client gave it, what it is."""

    path: Path
    file_name: str | None
    info: MediaInfo


# stores a task's media under its id (an upload, or a download)
FetchMedia = Callable[[UUID], Awaitable[StoredMedia]]


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


def storage_full(exc: OSError, param: str) -> ApiError | None:
    """The media store's disk (or quota) is full: a 507 the client can retry later."""
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    return ApiError(
        507, "the server's media storage is full; nothing was kept of this request, retry later",
        "INSUFFICIENT_STORAGE", param, headers={"Retry-After": "60"},
    )  # fmt: skip


async def store_upload(store: MediaStore, upload: UploadFile, key: UUID) -> StoredMedia:
    """Save the upload and probe it; a bad file is deleted and reported before any task exists."""
    suffix = media_suffix(upload.filename)
    try:
        path, _size = await store.save(upload.file, key, suffix)  # type: ignore[arg-type]
    except OSError as exc:
        full = storage_full(exc, "file")
        if full is None:
            raise
        raise full from None
    return StoredMedia(path, upload.filename, await probe_stored(store, path, "file"))


async def probe_stored(store: MediaStore, path: Path, param: str) -> MediaInfo:
    """Probe stored media; unusable media is deleted and reported as a 400 before anything is queued."""
    try:
        return await asyncio.to_thread(probe_media, path)
    except AudioProcessingError as exc:
        store.delete(path)
        raise ApiError(400, exc.message, exc.code, param) from None


def upload_fetcher(store: MediaStore, upload: UploadFile) -> FetchMedia:
    """Stores `upload` under the task id it is given (the service's submit() calls it)."""

    async def fetch(task_id: UUID) -> StoredMedia:
        return await store_upload(store, upload, task_id)

    return fetch
