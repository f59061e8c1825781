"""Outbound HTTP that cannot be turned against the service's own network (SSRF-safe).

Every hop: http/https only; the host is resolved once, every address must be public (private,
loopback, link-local, reserved, multicast, unspecified and IPv4-mapped forms of those are
refused), and the connection goes to that resolved address (no second DNS lookup to race).
Redirects are followed by hand so each target is checked the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

MAX_REDIRECTS = 5
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class OutboundError(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def blocked(message: str) -> OutboundError:
    return OutboundError(422, message, "SSRF_BLOCKED")


@dataclass(frozen=True)
class Target:
    url: str  # with the resolved address in place of the host
    host: str  # for the Host header and TLS SNI
    address: IPAddress


def _public(address: IPAddress, allowed: tuple[Network, ...]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in net for net in allowed):
        return True
    return address.is_global and not address.is_multicast


async def resolve_target(url: str, allowed: tuple[Network, ...] = ()) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise blocked(f"only http and https URLs are allowed, not {parts.scheme or 'none'!r}")
    host = parts.hostname
    if not host:
        raise blocked("the URL has no host")
    if parts.username or parts.password:
        raise blocked("URLs with credentials are not allowed")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise blocked("the URL has an invalid port") from None
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror:
            raise OutboundError(422, f"host {host!r} could not be resolved", "URL_UNRESOLVABLE") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise OutboundError(422, f"host {host!r} has no address", "URL_UNRESOLVABLE")
    for address in addresses:
        if not _public(address, allowed):
            raise blocked(f"host {host!r} resolves to a non-public address")
    address = addresses[0]
    netloc = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{netloc}:{port}"
    return Target(urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), host, address)


def _request_kwargs(target: Target, original: str) -> dict[str, object]:
    parts = urlsplit(original)
    host_header = parts.hostname or target.host
    if parts.port:
        host_header = f"{host_header}:{parts.port}"
    extensions = {"sni_hostname": target.host} if parts.scheme == "https" else {}
    return {"headers": {"Host": host_header}, "extensions": extensions}


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, url: str, allowed: tuple[Network, ...] = ()
) -> AsyncIterator[tuple[httpx.Response, str]]:
    """GET `url` safely, following redirects by hand; yields the final response and URL."""
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        target = await resolve_target(current, allowed)
        request = client.build_request("GET", target.url, **_request_kwargs(target, current))  # type: ignore[arg-type]
        response = await client.send(request, stream=True, follow_redirects=False)
        if response.is_redirect and "location" in response.headers:
            await response.aclose()
            current = urljoin(current, response.headers["location"])
            continue
        try:
            yield response, current
        finally:
            await response.aclose()
        return
    raise OutboundError(422, f"more than {MAX_REDIRECTS} redirects", "URL_TOO_MANY_REDIRECTS")


async def post_json(
    client: httpx.AsyncClient, url: str, body: bytes, allowed: tuple[Network, ...] = ()
) -> httpx.Response:
    target = await resolve_target(url, allowed)
    kwargs = _request_kwargs(target, url)
    headers = {**kwargs["headers"], "Content-Type": "application/json"}  # type: ignore[dict-item]
    request = client.build_request("POST", target.url, content=body, headers=headers, extensions=kwargs["extensions"])  # type: ignore[arg-type]
    return await client.send(request, follow_redirects=False)


def parse_networks(values: list[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)
