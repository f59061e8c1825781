"""Which dependency an exception says is down (the 503 DEPENDENCY_UNAVAILABLE decision)."""

from __future__ import annotations

import redis.exceptions
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from whisperx_api.outages import unavailable


class CannotConnectNowError(Exception):  # named like asyncpg's
    __module__ = "asyncpg.exceptions"


def test_redis_and_database_outages_are_told_apart() -> None:
    assert unavailable(redis.exceptions.ConnectionError("refused")) == "redis"
    assert unavailable(redis.exceptions.TimeoutError("slow")) == "redis"
    assert unavailable(OperationalError("SELECT 1", {}, Exception("unable to open database file"))) == "database"
    refused = DBAPIError(None, None, CannotConnectNowError("starting up"))
    assert unavailable(refused) == "database"  # no statement ran: the connection itself failed


def test_a_cause_deep_in_the_chain_counts_and_bugs_do_not() -> None:
    try:
        try:
            raise redis.exceptions.ConnectionError("gone")
        except redis.exceptions.ConnectionError as inner:
            raise RuntimeError("while enqueueing") from inner
    except RuntimeError as outer:
        assert unavailable(outer) == "redis"
    assert unavailable(ValueError("a bug")) is None
    assert unavailable(IntegrityError("INSERT", {}, Exception("duplicate key"))) is None
