"""Serving a stored media file for playback, with HTTP range requests (RFC 9110 section 14):
browsers' audio and video elements ask for `bytes=0-` and then the byte ranges they seek to."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import anyio
from litestar.response import Stream

from whisperx_api.errors import ApiError

CHUNK = 256 * 1024
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
# containers browsers play that mimetypes does not know, or names differently
_MEDIA_TYPES = {
    ".oga": "audio/ogg", ".ogg": "audio/ogg", ".m4a": "audio/mp4", ".aac": "audio/aac", ".wav": "audio/wav",
    ".mp3": "audio/mpeg", ".webm": "audio/webm", ".mkv": "video/x-matroska", ".mp4": "video/mp4",
    ".mov": "video/quicktime", ".amr": "audio/amr", ".awb": "audio/amr-wb", ".wma": "audio/x-ms-wma",
    ".wmv": "video/x-ms-wmv", ".avi": "video/x-msvideo",
}  # fmt: skip


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range a `Range` header asks for; None: the whole file (no header, or one this
    server answers with the whole file: several ranges, or another unit). A range that starts
    past the end is a 416 RANGE_NOT_SATISFIABLE."""
    if not header:
        return None
    match = _RANGE.match(header)
    if match is None:  # "bytes=0-1,5-9" or "items=..." : serving the whole file is allowed
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0:
            raise _unsatisfiable(size)
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise _unsatisfiable(size)
    return ByteRange(start, end)


def _unsatisfiable(size: int) -> ApiError:
    return ApiError(
        416, f"the requested range is outside the file ({size} bytes)", "RANGE_NOT_SATISFIABLE", "Range",
        headers={"Content-Range": f"bytes */{size}"},
    )  # fmt: skip


def media_type(path: Path) -> str:
    return _MEDIA_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


async def _chunks(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as handle:
        await handle.seek(start)
        left = length
        while left > 0:
            chunk = await handle.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def playback(path: Path, range_header: str | None, file_name: str | None) -> Stream:
    """The file, or the range of it asked for (206 with Content-Range)."""
    size = path.stat().st_size
    wanted = parse_range(range_header, size)
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600"}
    if file_name:
        headers["Content-Disposition"] = f"inline; filename*=UTF-8''{quote(file_name, safe='')}"
    if wanted is None:
        headers["Content-Length"] = str(size)
        return Stream(_chunks(path, 0, size), media_type=media_type(path), headers=headers)
    headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{size}"
    headers["Content-Length"] = str(wanted.length)
    return Stream(
        _chunks(path, wanted.start, wanted.length), media_type=media_type(path), headers=headers, status_code=206
    )
