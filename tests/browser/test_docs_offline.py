"""The API docs render with no network but this machine: Swagger UI lists every operation,
Scalar renders, and Swagger's "Try it out" (with the bearer token given to "Authorize") uploads a
file to /speech-to-text and gets a task id back."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.audio import speak
from tests.browser.conftest import TOKEN, Server, Tab

OPERATION_METHODS = {"get", "post", "put", "patch", "delete"}


def operations(server: Server) -> list[tuple[str, str]]:
    with server.api() as api:
        spec = api.get("/docs/openapi.json").json()
    return [(method, path) for path, item in spec["paths"].items() for method in item if method in OPERATION_METHODS]


def test_swagger_lists_every_operation_offline(server: Server, tab: Tab) -> None:
    expected = operations(server)
    tab.page.goto(f"{server.url}/docs")
    tab.page.wait_for_selector(".opblock")
    shown = tab.page.locator(".opblock")
    assert shown.count() == len(expected), (shown.count(), len(expected))
    paths = set(tab.page.locator(".opblock-summary-path").all_inner_texts())
    assert {path for _, path in expected} <= {p.replace("\u200b", "") for p in paths}
    tab.shot("swagger")
    # its assets came from this service
    assets = [r.url for r in tab.requests if r.resource_type in ("script", "stylesheet")]
    assert assets and all("/static/docs/swagger/" in url for url in assets), assets


def test_scalar_renders_offline(server: Server, tab: Tab) -> None:
    tab.page.goto(f"{server.url}/docs/scalar")
    tab.page.get_by_role("heading", name="whisperx-api").first.wait_for()
    for tag in ("Tasks", "Speech-2-Text", "OpenAI-compatible", "Speakers"):
        assert tab.page.get_by_text(tag, exact=True).first.is_visible(), tag
    tab.page.get_by_text("Speech-2-Text", exact=True).first.click()
    tab.page.get_by_text("/speech-to-text", exact=True).first.wait_for()
    tab.shot("scalar")
    assert any("/static/docs/scalar/standalone.js" in r.url for r in tab.requests)


@pytest.mark.models
def test_swagger_try_it_out_with_the_token_queues_a_task(auth_server: Server, tab: Tab, tmp_path: Path) -> None:
    clip = speak("Trying it out from the docs.", tmp_path / "try.wav")
    page = tab.page
    page.goto(f"{auth_server.url}/docs")
    page.wait_for_selector(".opblock")
    # Authorize: the bearer token, for every request Swagger sends
    page.locator("button.authorize").first.click()
    page.locator(".modal-ux input[type=password], .modal-ux input[type=text]").first.fill(TOKEN)
    page.locator(".modal-ux button.authorize").click()
    tab.shot("authorized")
    page.locator(".modal-ux button.btn-done, .modal-ux .close-modal").first.click()
    operation = page.locator(".opblock-post").filter(
        has=page.locator(".opblock-summary-path", has_text=re.compile(r"^/speech-to-text$"))
    )
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.locator("input[type=file]").set_input_files(str(clip))
    tab.shot("try-it-out")
    operation.get_by_role("button", name="Execute").click()
    body = operation.locator(".live-responses-table .response-col_description pre").first
    body.wait_for()
    status = operation.locator(".live-responses-table tr.response .response-col_status").first.inner_text().strip()
    text = body.inner_text()
    tab.shot("executed")
    assert status == "200", (status, text)
    identifier = json.loads(text)["identifier"]
    with auth_server.api() as api:
        assert api.get(f"/task/{identifier}").status_code == 200
        # without the token the same request is refused: Authorize is what made it pass
        assert api.get(f"/task/{identifier}", headers={"Authorization": ""}).status_code == 401
