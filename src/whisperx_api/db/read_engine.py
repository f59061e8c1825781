"""Reads that need no transaction (the task API's GET /task/{id} and task list), run the cheapest
way each database allows; everything that writes uses the main engine (db/config.py).

SQLite: the whole read (checkout, execute, fetch, release) runs as one unit with the standard
sqlite3 driver: a bounded read (a task by its id, a page near the list's top) right on the event
loop, where it costs ~100 us of CPU for a task and ~180 us for a page against ~330 and ~520 us
when handed to a thread and back (the thread's wake-up and the loop's); the rest (counts, deep
offsets, which walk an index) on a small thread pool. Through aiosqlite each step was its own hop
to the connection's thread (cursor, execute, fetchall, close, rollback: five per read). Measured
in one process, 2026-12-03.

PostgreSQL: the statements (SQLAlchemy Core, built once) compiled once and run on asyncpg's own
pool, without SQLAlchemy's async layer: that layer's greenlet hops, pre-ping and the BEGIN and
ROLLBACK around every read cost ~490 us of CPU per task read against ~190 us (and ~150 against
~100 us in the database server; measured in one process, 2026-12-03). asyncpg decodes uuid,
timestamptz and text to what the ORM's types give. A read that meets a connection the database
dropped (a restart) is run once more on a new one, so an outage still ends with the first read
after it rather than with an error per pooled connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, Protocol

import asyncpg
from sqlalchemy import Engine, Select, create_engine, event, make_url
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.pool import NullPool

from whisperx_api.db.config import SQLITE_BUSY_TIMEOUT_MS, sqlite_pragmas
from whisperx_api.outages import DatabaseUnreachable
from whisperx_api.settings import Settings

# the reads' threads (and SQLite connections): the work is mostly under the GIL, so more threads
# only queue for it; a few let one slow read (a deep offset) not hold up the rest
SQLITE_READ_THREADS = 4
# PostgreSQL connections for reads, besides the main engine's 20. With reads taking turns
# (PostgresReads._turns) 10 gave a lower p99 than 4 under wrk's 200 connections (task 176-180
# against 198-206 ms, list 277-284 against 330-369 ms; 2026-12-03, server on the same 2 cores)
POSTGRES_READ_POOL = 10

# the connection lost under a read (asyncpg's connection errors are InterfaceErrors; a pooled
# connection whose server process was ended while idle fails its next statement with an
# InternalClientError, its protocol still busy with the termination notice)
CONNECTION_LOST = (
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.InternalClientError,
)

Statement = tuple[Select[*tuple[Any, ...]], dict[str, Any]]
# rows whose columns are attributes named as the statement's columns (SQLAlchemy's or _Record)
Rows = Sequence[Any]


class ReadEngine(Protocol):
    async def fetch(self, *statements: Statement, bounded: bool = False) -> list[Rows]:
        """Each statement's rows, all read on one connection. `bounded`: the statements read a few
        rows through an index (a task by its id, a page near the list's top or after a cursor),
        which SQLite does in less time than handing the read to a thread and back."""
        ...

    async def dispose(self) -> None: ...


class SqliteReads:
    def __init__(self, url: str, *, null_pool: bool) -> None:
        options: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}}
        if null_pool:
            options["poolclass"] = NullPool
        else:
            # a connection for each thread and one for the event loop's bounded reads, which
            # therefore never wait for one
            options.update(pool_size=SQLITE_READ_THREADS + 1, max_overflow=0)
        self._engine: Engine = create_engine(make_url(url).set(drivername="sqlite"), **options)
        event.listen(self._engine, "connect", sqlite_pragmas)
        self._threads = ThreadPoolExecutor(SQLITE_READ_THREADS, thread_name_prefix="sqlite-reads")

    def _read(self, statements: tuple[Statement, ...]) -> list[Rows]:
        with self._engine.connect() as connection:
            return [connection.execute(statement, params).all() for statement, params in statements]

    async def fetch(self, *statements: Statement, bounded: bool = False) -> list[Rows]:
        if bounded:  # on the event loop: ~100 us of CPU for a task against ~330 us with the hop
            return self._read(statements)
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._read, statements)

    async def dispose(self) -> None:
        await asyncio.to_thread(self._threads.shutdown)
        self._engine.dispose()


class _Record(asyncpg.Record):
    """A row whose columns are also attributes, as on SQLAlchemy's rows, which the readers use."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class _Compiled(NamedTuple):
    statement: Select[*tuple[Any, ...]]
    sql: str
    names: tuple[str, ...]
    bound: dict[str, Any]


class PostgresReads:
    def __init__(self, url: str, *, null_pool: bool) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._null_pool = null_pool
        self._pool: asyncpg.Pool | None = None
        self._pool_made = asyncio.Lock()
        # reads take their turn here, first come first served, so the pool never makes one wait:
        # asyncpg's acquire waits on an asyncio.Queue, where a read arriving just as a connection
        # comes back takes it before the waiter that was woken for it, which goes to the back of
        # the line. 200 readers on 4 or 10 connections in one process: p99 155-200 -> 49-59 ms,
        # slowest 470-520 -> 53-77 ms, the same reads per second (2026-12-03)
        self._turns = asyncio.Semaphore(POSTGRES_READ_POOL)
        self._dialect = postgresql_asyncpg.dialect()
        # each statement's SQL, the order of its parameters and the values bound in it, compiled
        # once (the statements are built once too, tasks/reads.py); asyncpg prepares each SQL
        # text once per connection
        self._compiled: dict[int, _Compiled] = {}

    def _sql(self, statement: Select[*tuple[Any, ...]]) -> _Compiled:
        known = self._compiled.get(id(statement))
        if known is None or known.statement is not statement:
            compiled = statement.compile(dialect=self._dialect)
            # the values written into the statement; a parameter left to the caller stays out,
            # so a read that lacks it fails (KeyError) instead of sending NULL
            bound = {name: value for name, value in compiled.params.items() if not compiled.binds[name].required}
            known = _Compiled(statement, compiled.string, tuple(compiled.positiontup or ()), bound)
            self._compiled[id(statement)] = known
        return known

    async def fetch(self, *statements: Statement, bounded: bool = False) -> list[Rows]:
        try:
            try:
                return await self._read(statements)
            except CONNECTION_LOST:
                # the database dropped this connection (a restart): once more, on a new one;
                # if the database is down, this raises the outage
                return await self._read(statements)
        except OSError as error:  # refused or unreachable: the outage, as the main engine reports it
            raise DatabaseUnreachable(str(error)) from error

    async def _read(self, statements: tuple[Statement, ...]) -> list[Rows]:
        if self._null_pool:
            connection = await asyncpg.connect(self._dsn, record_class=_Record)
            try:
                return await self._run(connection, statements)
            finally:
                await connection.close()
        async with self._turns, (await self._connections()).acquire() as pooled:
            return await self._run(pooled, statements)

    async def _run(self, connection: Any, statements: tuple[Statement, ...]) -> list[Rows]:
        rows = []
        for statement, params in statements:
            compiled = self._sql(statement)
            values = compiled.bound | params
            rows.append(await connection.fetch(compiled.sql, *(values[name] for name in compiled.names)))
        return rows

    async def _connections(self) -> asyncpg.Pool:
        # made at the first read, not at start: a service started while the database is down
        # answers its reads with the outage instead of failing to start
        if self._pool is None:
            async with self._pool_made:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=0,
                        max_size=POSTGRES_READ_POOL,
                        record_class=_Record,
                        reset=_nothing_to_reset,
                    )
        return self._pool

    async def dispose(self) -> None:
        if self._pool is not None:
            await self._pool.close()


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """asyncpg's default reset on release (advisory locks, cursors, LISTEN, RESET ALL) is a second
    round trip per read; these connections only ever run the SELECTs above, which change no
    session state (asyncpg still rolls back a transaction left open). Measured in one process,
    50 readers, 2026-12-03: 186-289 -> 127-140 us of CPU per read, 3,200-4,900 -> 6,800-6,900
    reads/s."""


def make_read_engine(settings: Settings, *, null_pool: bool = False) -> ReadEngine:
    url = settings.db_url
    if url.startswith("sqlite"):
        return SqliteReads(url, null_pool=null_pool)
    return PostgresReads(url, null_pool=null_pool)
