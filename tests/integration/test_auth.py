"""Bearer auth on every route the app has, except health and docs (routes enumerated from the app)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from tests.support import clear_queue, make_settings
from whisperx_api.app import create_app
from whisperx_api.security.auth import OPEN_PATHS

TOKEN = "s3cret-token-with-enough-entropy"


@pytest.fixture(scope="module")
async def secured(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AsyncTestClient]:
    root = tmp_path_factory.mktemp("auth")
    settings = make_settings(
        root / "data",
        f"sqlite:///{root / 'r.db'}",
        auth={"enabled": True, "bearer_token": TOKEN},
        worker_in_process=False,
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client
    clear_queue(settings.queue_name)


def _routes(client: AsyncTestClient) -> list[tuple[str, str, str]]:
    """(method, concrete path, declared path) for every route the app serves."""
    pairs = []
    for route in client.app.routes:
        path = re.sub(r"\{[^}:]+:[^}]+\}", "00000000-0000-0000-0000-000000000000", route.path)
        for method in sorted(getattr(route, "methods", set()) - {"OPTIONS", "HEAD"}):
            pairs.append((method, path, route.path))
    return pairs


async def test_every_route_but_health_and_docs_needs_the_token(secured: AsyncTestClient) -> None:
    routes = _routes(secured)
    protected = [(m, p) for m, p, _ in routes if not OPEN_PATHS.match(p)]
    assert len(protected) >= 14, protected  # tasks, speech, services, /v1 ...
    for method, path in protected:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": "Bearer "},
        ):
            response = await secured.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.json()["error"]["type"] == "authentication_error"
            assert response.json()["error"]["code"] == "AUTHENTICATION_FAILED"
            assert response.headers["x-request-id"]
        authorised = await secured.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert authorised.status_code != 401, (method, path)
    for method, path, declared in routes:
        if OPEN_PATHS.match(path) and method == "GET" and "{" not in declared:
            assert (await secured.get(path, follow_redirects=False)).status_code in (200, 302), path


async def test_openapi_declares_the_bearer_scheme(secured: AsyncTestClient) -> None:
    spec = (await secured.get("/docs/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["BearerToken"] == {
        "type": "http", "scheme": "bearer", "description": "AUTH__BEARER_TOKEN"
    }  # fmt: skip
    for path, item in spec["paths"].items():
        if not OPEN_PATHS.match(path):
            for operation in item.values():
                assert {"BearerToken": []} in operation["security"], path


async def test_auth_is_off_by_default(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'r.db'}", worker_in_process=False)
    async with AsyncTestClient(app=create_app(settings)) as client:
        assert (await client.get("/task/all")).status_code == 200
    clear_queue(settings.queue_name)
