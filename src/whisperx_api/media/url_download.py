"""Fetching media for /speech-to-text-url: SSRF-safe, bounded in size and time."""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit
from uuid import UUID

import httpx

from whisperx_api.errors import ApiError
from whisperx_api.media.intake import StoredMedia, probe_stored, storage_full
from whisperx_api.media.storage import MediaStore
from whisperx_api.pipeline.audio import ALLOWED_EXTENSIONS
from whisperx_api.security.outbound import OutboundError, open_stream, parse_networks
from whisperx_api.settings import Settings

CHUNK = 1024 * 1024
_TYPE_SUFFIX = {"audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/wav": ".wav", "audio/x-wav": ".wav",
                "audio/wave": ".wav", "audio/ogg": ".ogg", "audio/mp4": ".m4a", "audio/x-m4a": ".m4a",
                "audio/aac": ".aac", "video/mp4": ".mp4", "video/quicktime": ".mov", "video/x-matroska": ".mkv"}  # fmt: skip


def _name_and_suffix(url: str, content_type: str | None) -> tuple[str, str | None]:
    name = PurePosixPath(unquote(urlsplit(url).path)).name or "download"
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in ALLOWED_EXTENSIONS:
        return name, suffix
    kind = (content_type or "").split(";")[0].strip().lower()
    guessed = _TYPE_SUFFIX.get(kind) or mimetypes.guess_extension(kind or "x/x")
    return name, guessed if guessed in ALLOWED_EXTENSIONS else None


def max_download_bytes(settings: Settings) -> int:
    limit = settings.url_max_download_mb * 1024 * 1024
    upload_cap = settings.max_upload_bytes
    return min(limit, upload_cap) if upload_cap else limit


async def download(settings: Settings, store: MediaStore, url: str, task_id: UUID) -> StoredMedia:
    """Stream `url` into the media store and probe it. Errors are ApiErrors."""
    path, name = await _fetch(settings, store, url, task_id)
    return StoredMedia(path, name, await probe_stored(store, path, "url"))


async def _fetch(settings: Settings, store: MediaStore, url: str, task_id: UUID) -> tuple[Path, str]:
    limit = max_download_bytes(settings)
    timeout = httpx.Timeout(30.0, connect=10.0)
    target = None
    try:
        async with (
            asyncio.timeout(settings.url_download_timeout_s),
            httpx.AsyncClient(timeout=timeout) as client,
            open_stream(client, url, parse_networks(settings.outbound_allowed_networks)) as (response, final),
        ):
            if response.status_code >= 400:
                server = response.status_code >= 500
                raise ApiError(
                    502 if server else 422, f"the remote server answered {response.status_code}",
                    "REMOTE_SERVER_ERROR" if server else "REMOTE_CLIENT_ERROR", "url",
                )  # fmt: skip
            declared = int(response.headers.get("content-length") or 0)
            if declared > limit:
                raise ApiError(413, f"the remote file is larger than {limit} bytes", "REQUEST_TOO_LARGE", "url")
            name, suffix = _name_and_suffix(final, response.headers.get("content-type"))
            if suffix is None:
                raise ApiError(
                    415, f"the URL does not point to a supported media type; allowed: {', '.join(ALLOWED_EXTENSIONS)}",
                    "UNSUPPORTED_FILE_TYPE", "url",
                )  # fmt: skip
            target = store.path_for(task_id, suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            size = 0
            with target.open("wb") as out:
                async for chunk in response.aiter_bytes(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise ApiError(413, f"the remote file is larger than {limit} bytes", "REQUEST_TOO_LARGE", "url")
                    await asyncio.to_thread(out.write, chunk)
            return target, name
    except OutboundError as exc:
        raise ApiError(exc.status, exc.message, exc.code, "url") from None
    except TimeoutError:
        store.delete(target)
        raise ApiError(
            504, f"the download did not finish within {settings.url_download_timeout_s}s", "URL_TIMEOUT", "url"
        ) from None
    except httpx.HTTPError as exc:
        store.delete(target)
        raise ApiError(502, f"the URL could not be fetched: {type(exc).__name__}", "URL_UNREACHABLE", "url") from None
    except ApiError:
        store.delete(target)
        raise
    except OSError as exc:
        store.delete(target)
        full = storage_full(exc, "url")
        if full is None:
            raise
        raise full from None
