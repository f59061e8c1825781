"""Shared bearer token (AUTH__ENABLED / AUTH__BEARER_TOKEN) on every route but health and docs."""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable

from litestar.types import ASGIApp, Receive, Scope, Send

from whisperx_api.errors import ApiError
from whisperx_api.security.responses import refuse

# open to probes, to people reading the docs (Swagger/Scalar "Authorize" then sends the token) and
# to the web page and its files (the page asks for the token and sends it with each request)
OPEN_PATHS = re.compile(r"^/($|health(/|$)|docs(/|$)|static/)")


def _supplied_token(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" and token.strip() else None
    return None


def bearer_auth(token: str) -> Callable[[ASGIApp], ASGIApp]:
    expected = token.encode()

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or OPEN_PATHS.match(scope["path"]):
                await app(scope, receive, send)
                return
            supplied = _supplied_token(scope)
            # compare_digest: the time taken does not reveal how much of the token matched
            if supplied is not None and hmac.compare_digest(supplied, expected):
                await app(scope, receive, send)
                return
            await refuse(
                receive, send, ApiError(
                    401, "missing or invalid bearer token", "AUTHENTICATION_FAILED",
                    headers={"WWW-Authenticate": 'Bearer realm="whisperx-api"'},
                ),
            )  # fmt: skip

        return middleware

    return factory
