"""Error responses sent straight from ASGI middleware (before any route runs or the body is read)."""

from __future__ import annotations

import asyncio
import time

import msgspec
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Send

from whisperx_api.errors import ApiError, ErrorBody, ErrorDetail, error_type

# A refused request's body is read and dropped, up to this much and this long, after the answer
# is sent: a server that closes a connection with unread data resets it, and a client still
# sending its upload then meets a dropped connection instead of the error (seen as httpx's
# ReadError). Past either limit the connection is closed as before.
DRAIN_MAX_BYTES = 256 * 1024 * 1024
DRAIN_MAX_S = 30.0


async def refuse(receive: Receive, send: Send, error: ApiError) -> None:
    """Answer with the error (the one error body, as the exception handlers write it), then read
    the rest of the request's body and drop it."""
    status = error.status_code
    body = msgspec.json.encode(ErrorBody(ErrorDetail(error.message, error_type(status), error.code, error.param)))
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (error.headers or {}).items()]
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": status, "headers": raw}
    await send(start)
    await send(HTTPResponseBodyEvent(type="http.response.body", body=body, more_body=False))
    await _drain(receive)


async def _drain(receive: Receive) -> None:
    deadline, received = time.monotonic() + DRAIN_MAX_S, 0
    while received <= DRAIN_MAX_BYTES:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            message = await asyncio.wait_for(receive(), remaining)
        except TimeoutError:
            return
        if message["type"] != "http.request":  # the client went away
            return
        received += len(message.get("body", b""))
        if not message.get("more_body", False):
            return
