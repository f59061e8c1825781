from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

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
