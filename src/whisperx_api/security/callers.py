"""Who is calling: the client address (X-Forwarded-For only from trusted proxies) or its token."""

from __future__ import annotations

import hashlib
import ipaddress

from litestar.types import Scope

from whisperx_api.security.outbound import Network


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == name), None)


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_ip(scope: Scope, proxies: tuple[Network, ...]) -> str:
    peer = (scope.get("client") or ("unknown", 0))[0]
    forwarded = _header(scope, b"x-forwarded-for")
    if not forwarded or not _trusted(peer, proxies):
        return str(peer)
    # the right-most address a trusted proxy did not add is the client
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        if not _trusted(hop, proxies):
            return hop
    return str(peer)


def caller_key(scope: Scope, strategy: str, proxies: tuple[Network, ...]) -> str:
    if strategy == "bearer_token":
        auth = _header(scope, b"authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return "token:" + hashlib.sha256(token.strip().encode()).hexdigest()[:32]
    return "ip:" + client_ip(scope, proxies)
