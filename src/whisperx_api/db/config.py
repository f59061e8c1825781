"""Database engine/session configuration and migrations."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from advanced_alchemy.alembic.commands import AlembicCommands
from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
)
from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from whisperx_api.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_POOL_SIZE = 10


def sqlite_pragmas(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
    # WAL lets readers proceed while the worker writes; busy_timeout turns lock contention into waiting.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_db_config(settings: Settings, *, null_pool: bool = False) -> SQLAlchemyAsyncConfig:
    url = settings.db_url
    engine_config: dict[str, Any] = {}
    if url.startswith("sqlite"):
        _ensure_sqlite_parent(url)
        engine_config["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        # a fixed set of connections: an overflow connection (a new thread, file open and
        # pragmas) opened and closed per request under load cost more than waiting for one
        if not null_pool:
            engine_config.update(pool_size=SQLITE_POOL_SIZE, max_overflow=0)
    elif not null_pool:
        # no overflow: under a burst of reads, overflow connections (each a TCP connect and
        # authentication) were opened and closed per request; waiting for one of 20 is cheaper.
        # pre-ping: a connection that died with a database restart is replaced, not handed out
        engine_config.update(pool_size=20, max_overflow=0, pool_pre_ping=True)
    if null_pool:
        engine_config["poolclass"] = NullPool
    config = SQLAlchemyAsyncConfig(
        connection_string=url,
        before_send_handler="autocommit",
        session_config=AsyncSessionConfig(expire_on_commit=False),
        engine_config=EngineConfig(**engine_config),
        alembic_config=AlembicAsyncConfig(script_location=str(MIGRATIONS_DIR), version_table_name="alembic_version"),
        create_all=False,
    )
    if url.startswith("sqlite"):
        event.listen(config.get_engine().sync_engine, "connect", sqlite_pragmas)
    return config


def _ensure_sqlite_parent(url: str) -> None:
    path = url.split("///", 1)[-1].split("?", 1)[0]
    if path and path != ":memory:":
        Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    """Run Alembic migrations (sync; the env opens its own NullPool engine)."""
    AlembicCommands(sqlalchemy_config=make_db_config(settings, null_pool=True)).upgrade(revision)


def downgrade_database(settings: Settings, revision: str) -> None:
    AlembicCommands(sqlalchemy_config=make_db_config(settings, null_pool=True)).downgrade(revision)


async def upgrade_database_async(settings: Settings) -> None:
    # the migration env calls asyncio.run(), so it needs a thread without a running loop
    await asyncio.to_thread(upgrade_database, settings)


async def downgrade_database_async(settings: Settings, revision: str) -> None:
    await asyncio.to_thread(downgrade_database, settings, revision)
