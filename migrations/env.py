"""Alembic environment (from advanced-alchemy's async template, reviewed).

Differences from the template: the models are imported so autogenerate sees them, and the
engine is always a fresh NullPool engine built from the URL, never the application's pooled
engine, because migrations run in their own thread and event loop.
"""

import asyncio
from typing import TYPE_CHECKING

from advanced_alchemy.base import metadata_registry
from alembic import context
from alembic.autogenerate import rewriter
from sqlalchemy import event, pool
from sqlalchemy.ext.asyncio import create_async_engine

import whisperx_api.db.models  # noqa: F401  (registers the tables on the metadata)
from whisperx_api.db.config import sqlite_pragmas

if TYPE_CHECKING:
    from advanced_alchemy.alembic.commands import AlembicCommandConfig
    from sqlalchemy.engine import Connection

config: "AlembicCommandConfig" = context.config  # type: ignore[assignment]
writer = rewriter.Rewriter()


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=metadata_registry.get(config.bind_key),
        compare_type=config.compare_type,
        version_table=config.version_table_name,
        version_table_schema=config.version_table_schema,
        version_table_pk=config.version_table_pk,
        user_module_prefix=config.user_module_prefix,
        render_as_batch=config.render_as_batch,
        process_revision_directives=writer,
        **kwargs,  # type: ignore[arg-type]
    )


def run_migrations_offline() -> None:
    _configure(url=config.db_url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: "Connection") -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_async_engine(config.db_url, poolclass=pool.NullPool)
    if engine.dialect.name == "sqlite":
        # the same WAL/busy-timeout pragmas as the service, from the first migration on
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
