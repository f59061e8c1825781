"""X-Request-ID on every response: the client's (when sane) or a new one.

A `before_send` hook rather than a middleware: Litestar runs before_send for every response,
including router-level 404/405 errors that route middleware never sees.
"""

from __future__ import annotations

import random
import re

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

HEADER = "x-request-id"
_SAFE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id(scope: Scope) -> str:
    state = scope.setdefault("state", {})
    if "request_id" not in state:
        sent = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-request-id"), None)
        # 128 random bits as hex, like a uuid4 but without its system call per request (8 % of a
        # task read under load); `random` reseeds in each forked web worker
        state["request_id"] = sent if sent and _SAFE.match(sent) else f"{random.getrandbits(128):032x}"
    return str(state["request_id"])


async def add_request_id(message: Message, scope: Scope) -> None:
    if message["type"] == "http.response.start":
        MutableScopeHeaders.from_message(message)[HEADER] = request_id(scope)
