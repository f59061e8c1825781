from __future__ import annotations

import os

# Any stray model-hub call must fail at once instead of retrying for minutes.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from tests.support import clear_queue, create_pg_database, drop_pg_database, make_settings, pg_url
from whisperx_api.app import create_app
from whisperx_api.settings import Settings


@pytest.fixture
async def pg_database() -> AsyncIterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped afterwards."""
    name = await create_pg_database()
    try:
        yield pg_url(name)
    finally:
        await drop_pg_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.db'}"
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path / "data", db_url)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    """The real app (real DB, real Redis, in-process SAQ worker) behind Litestar's test client."""
    try:
        async with AsyncTestClient(app=create_app(settings), timeout=60) as test_client:
            yield test_client
    finally:
        clear_queue(settings.queue_name)
