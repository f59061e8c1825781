from __future__ import annotations

import sqlalchemy as sa
from advanced_alchemy.base import metadata_registry
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import whisperx_api.db.models  # noqa: F401  (registers the tables on the metadata)
from tests.support import make_settings
from whisperx_api.db.config import downgrade_database_async, upgrade_database_async


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    await engine.dispose()
    return names


async def test_upgrade_from_empty_then_down_and_up_again(tmp_path, db_url: str) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path, db_url)
    await upgrade_database_async(settings)
    assert {"task", "speaker", "alembic_version"} <= await _tables(settings.db_url)
    await downgrade_database_async(settings, "base")
    assert await _tables(settings.db_url) <= {"alembic_version"}
    await upgrade_database_async(settings)
    assert {"task", "speaker"} <= await _tables(settings.db_url)
    await upgrade_database_async(settings)  # idempotent at head


async def test_the_migrations_build_the_schema_the_models_declare(tmp_path, db_url: str) -> None:  # type: ignore[no-untyped-def]
    # tables, columns and indexes (column types not compared: SQLite reflects the UUID type as NUMERIC)
    settings = make_settings(tmp_path, db_url)
    await upgrade_database_async(settings)
    engine = create_async_engine(settings.db_url, poolclass=NullPool)
    async with engine.connect() as conn:
        drift = await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": False}), metadata_registry.get(None)
            )
        )
    await engine.dispose()
    assert drift == []
