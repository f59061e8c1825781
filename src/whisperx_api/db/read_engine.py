"""Reads that need no transaction (the task API's GET /task/{id} and task list), run the cheapest
way each database allows; everything that writes uses the main engine (db/config.py).

SQLite: the whole read (checkout, execute, fetch, release) runs as one unit on a small thread
pool with the standard sqlite3 driver. Through aiosqlite each of those steps is its own hop to the
connection's thread and back (cursor, execute, fetchall, close, rollback: five per read), which
cost ~340 us of CPU per read against ~85 us for the one hop (measured in one process, 2026-12-02).

PostgreSQL: asyncpg on a pool of its own without pre-ping (a `SELECT` round trip before every
read); a read that meets a connection the database dropped (a restart) is run once more, after
SQLAlchemy has replaced the pool's connections, so an outage still ends with the first read
after it rather than with an error per pooled connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from sqlalchemy import Engine, Row, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import Executable

from whisperx_api.db.config import SQLITE_BUSY_TIMEOUT_MS, sqlite_pragmas
from whisperx_api.settings import Settings

# the reads' threads (and SQLite connections): the work is mostly under the GIL, so more threads
# only queue for it; a few let one slow read (a deep offset) not hold up the rest
SQLITE_READ_THREADS = 4
# PostgreSQL connections for reads, besides the main engine's 20
POSTGRES_READ_POOL = 10

Statement = tuple[Executable, dict[str, Any]]
Rows = Sequence[Row[Any]]


class ReadEngine(Protocol):
    async def fetch(self, *statements: Statement) -> list[Rows]:
        """Each statement's rows, all read on one connection."""
        ...

    async def dispose(self) -> None: ...


class SqliteReads:
    def __init__(self, url: str, *, null_pool: bool) -> None:
        options: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}}
        if null_pool:
            options["poolclass"] = NullPool
        else:
            options.update(pool_size=SQLITE_READ_THREADS, max_overflow=0)
        self._engine: Engine = create_engine(make_url(url).set(drivername="sqlite"), **options)
        event.listen(self._engine, "connect", sqlite_pragmas)
        self._threads = ThreadPoolExecutor(SQLITE_READ_THREADS, thread_name_prefix="sqlite-reads")

    def _read(self, statements: tuple[Statement, ...]) -> list[Rows]:
        with self._engine.connect() as connection:
            return [connection.execute(statement, params).all() for statement, params in statements]

    async def fetch(self, *statements: Statement) -> list[Rows]:
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._read, statements)

    async def dispose(self) -> None:
        await asyncio.to_thread(self._threads.shutdown)
        self._engine.dispose()


class PostgresReads:
    def __init__(self, url: str, *, null_pool: bool) -> None:
        options: dict[str, Any] = (
            {"poolclass": NullPool} if null_pool else {"pool_size": POSTGRES_READ_POOL, "max_overflow": 0}
        )
        self._engine: AsyncEngine = create_async_engine(url, **options)

    async def fetch(self, *statements: Statement) -> list[Rows]:
        try:
            return await self._read(statements)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            # the database dropped this connection (and SQLAlchemy the pool's others with it):
            # once more on a new one; if the database is down, this raises the outage
            return await self._read(statements)

    async def _read(self, statements: tuple[Statement, ...]) -> list[Rows]:
        async with self._engine.connect() as connection:
            return [(await connection.execute(statement, params)).all() for statement, params in statements]

    async def dispose(self) -> None:
        await self._engine.dispose()


def make_read_engine(settings: Settings, *, null_pool: bool = False) -> ReadEngine:
    url = settings.db_url
    if url.startswith("sqlite"):
        return SqliteReads(url, null_pool=null_pool)
    return PostgresReads(url, null_pool=null_pool)
