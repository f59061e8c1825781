"""Telling "a dependency is not answering" from a bug: which one (Redis or the database) an
exception says is down, so callers retry or answer 503 DEPENDENCY_UNAVAILABLE instead of 500."""

from __future__ import annotations

from typing import Literal

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

Dependency = Literal["redis", "database"]


def unavailable(exc: BaseException) -> Dependency | None:
    """The dependency an exception (or the exception it was raised from) says is down."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RedisConnectionError | RedisTimeoutError):
            return "redis"
        if isinstance(current, OperationalError | InterfaceError):
            return "database"
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return "database"
        if isinstance(current, ConnectionRefusedError | ConnectionResetError) or (
            isinstance(current, OSError) and "asyncpg" in type(current).__module__
        ):
            return "database" if _from_database(exc) else "redis"
        current = current.__cause__ or current.__context__
    return None


def _from_database(exc: BaseException) -> bool:
    text = f"{type(exc).__module__} {exc!r}".lower()
    return any(word in text for word in ("sqlalchemy", "asyncpg", "sqlite", "postgres"))
