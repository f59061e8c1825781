"""Per-caller rate limit with counters in Redis, so every web process shares one budget.

Two fixed windows per caller: RATE_LIMIT__REQUESTS_PER_MINUTE per minute and RATE_LIMIT__BURST
per second, counted atomically by one Lua script. A refused request gets 429 RATE_LIMIT_EXCEEDED
with Retry-After; every limited response carries RateLimit-Limit/-Remaining/-Reset. If Redis is
unreachable the request is let through (the limit is a guard, not a dependency) and logged, at
most once per SKIP_LOG_INTERVAL_S: a flood during an outage must not become a flood of tracebacks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.exceptions import RedisError

from whisperx_api.errors import ApiError
from whisperx_api.security.auth import OPEN_PATHS
from whisperx_api.security.callers import caller_key
from whisperx_api.security.outbound import parse_networks
from whisperx_api.security.responses import refuse
from whisperx_api.settings import Settings

logger = logging.getLogger(__name__)

SKIP_LOG_INTERVAL_S = 10.0

COUNT = """
local minute = redis.call('INCR', KEYS[1])
if minute == 1 then redis.call('EXPIRE', KEYS[1], 61) end
local second = redis.call('INCR', KEYS[2])
if second == 1 then redis.call('EXPIRE', KEYS[2], 2) end
return {minute, second}
"""


def rate_limit(settings: Settings) -> Callable[[ASGIApp], ASGIApp]:
    config = settings.rate_limit
    proxies = parse_networks(config.trusted_proxies)
    prefix = f"{settings.queue_name}:ratelimit"
    skipped = 0
    logged_at = -SKIP_LOG_INTERVAL_S

    def note_skip(error: RedisError) -> None:
        nonlocal skipped, logged_at
        skipped += 1
        if time.monotonic() - logged_at >= SKIP_LOG_INTERVAL_S:
            logger.warning("rate limit skipped for %d request(s): Redis unreachable: %r", skipped, error)
            skipped, logged_at = 0, time.monotonic()

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or OPEN_PATHS.match(scope["path"]):
                await app(scope, receive, send)
                return
            now = time.time()
            minute_window, second_window = int(now // 60), int(now)
            caller = caller_key(scope, config.key_strategy, proxies)
            redis = scope["app"].state.runtime.queue.redis
            try:
                minute, second = await redis.eval(
                    COUNT, 2, f"{prefix}:{caller}:m:{minute_window}", f"{prefix}:{caller}:s:{second_window}"
                )
            except RedisError as error:
                note_skip(error)
                await app(scope, receive, send)
                return
            reset = max(1, 60 - int(now % 60))
            headers = {
                "RateLimit-Limit": str(config.requests_per_minute),
                "RateLimit-Remaining": str(max(0, config.requests_per_minute - int(minute))),
                "RateLimit-Reset": str(reset),
            }
            if int(minute) > config.requests_per_minute or int(second) > config.burst:
                retry_after = reset if int(minute) > config.requests_per_minute else 1
                message = (
                    f"rate limit exceeded: {config.requests_per_minute} requests per minute"
                    f" and {config.burst} per second; retry in {retry_after}s"
                )
                await refuse(
                    receive, send,
                    ApiError(429, message, "RATE_LIMIT_EXCEEDED", headers={**headers, "Retry-After": str(retry_after)}),
                )  # fmt: skip
                return

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    mutable = MutableScopeHeaders.from_message(message)
                    for key, value in headers.items():
                        mutable[key] = value
                await send(message)

            await app(scope, receive, send_with_headers)

        return middleware

    return factory
