"""Readiness reports which dependency is down (real outages, not mocks)."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import AsyncTestClient

from tests.support import create_pg_database, drop_pg_database, make_settings, pg_url
from whisperx_api.app import create_app


async def test_ready_503_names_redis_when_it_stops(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'r.db'}", redis_url=None)
    app = create_app(settings)
    async with AsyncTestClient(app=app) as client:
        assert (await client.get("/health/ready")).status_code == 200
        app.state.runtime.embedded_redis.stop()  # the embedded redis-server really exits
        response = await client.get("/health/ready")
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "DEPENDENCY_UNAVAILABLE" and error["param"] == "redis"
        assert error["type"] == "server_error"
        assert (await client.get("/health/live")).status_code == 200  # liveness does not depend on Redis


async def test_ready_503_names_database_when_it_disappears(tmp_path: Path) -> None:
    name = await create_pg_database()
    settings = make_settings(tmp_path / "data", pg_url(name))
    try:
        async with AsyncTestClient(app=create_app(settings)) as client:
            assert (await client.get("/health/ready")).status_code == 200
            await drop_pg_database(name)  # terminates connections and removes the database
            response = await client.get("/health/ready")
            assert response.status_code == 503
            assert response.json()["error"]["param"] == "database"
    finally:
        await drop_pg_database(name)
