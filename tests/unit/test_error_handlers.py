"""The error handlers on a fake route (API-layer unit test): unexpected errors keep the one shape."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.testing import TestClient

from whisperx_api.errors import exception_handlers
from whisperx_api.request_id import add_request_id


@get("/fake/boom")
async def fake_boom() -> None:
    raise RuntimeError("secret internals: /etc/passwd")


def test_unexpected_exception_is_a_500_in_the_error_shape_without_internals() -> None:
    app = Litestar([fake_boom], exception_handlers=exception_handlers, before_send=[add_request_id])
    with TestClient(app) as client:
        response = client.get("/fake/boom")
    assert response.status_code == 500
    assert response.json() == {
        "error": {"message": "internal server error", "type": "server_error", "code": "INTERNAL_ERROR", "param": None}
    }
    assert "secret" not in response.text
    assert response.headers["x-request-id"]
