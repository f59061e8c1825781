"""Telling "a dependency is not answering" from a bug: which one (Redis or the database) an
exception says is down, so callers retry or answer 503 DEPENDENCY_UNAVAILABLE instead of 500."""

from __future__ import annotations

from typing import Literal

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

Dependency = Literal["redis", "database"]


class DatabaseUnreachable(Exception):
    """No connection to the database could be made (refused, unreachable); raised by readers that
    talk to the driver without SQLAlchemy (db/read_engine.py), whose errors would say it."""


# driver errors (by class name, so no driver has to be imported) that mean "no usable connection"
_DATABASE_CONNECTION_ERRORS = {
    "CannotConnectNowError", "ConnectionDoesNotExistError", "ConnectionFailureError", "InterfaceError",
    "ObjectNotInPrerequisiteStateError", "TooManyConnectionsError", "AdminShutdownError", "CrashShutdownError",
}  # fmt: skip


def unavailable(exc: BaseException) -> Dependency | None:
    """The dependency an exception (or one it was raised from) says is down, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RedisConnectionError | RedisTimeoutError):
            return "redis"
        if isinstance(current, OperationalError | InterfaceError | DatabaseUnreachable):
            return "database"
        if isinstance(current, DBAPIError) and (
            current.connection_invalidated or current.statement is None  # failed to connect at all
            or type(current.orig).__name__ in _DATABASE_CONNECTION_ERRORS
        ):  # fmt: skip
            return "database"
        if type(current).__name__ in _DATABASE_CONNECTION_ERRORS and "asyncpg" in type(current).__module__:
            return "database"
        current = current.__cause__ or current.__context__
    return None
