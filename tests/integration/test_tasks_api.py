"""The task API over the real app: real database (SQLite and PostgreSQL), Redis and SAQ worker."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from litestar.testing import AsyncTestClient

from tests.audio import speak
from tests.support import wait_for_status
from whisperx_api.db.config import make_db_config
from whisperx_api.db.models import Task
from whisperx_api.settings import Settings
from whisperx_api.tasks.reads import TOTAL_MAX_AGE_S

pytestmark = __import__("pytest").mark.asyncio


async def _probe(client: AsyncTestClient, path: Path, name: str | None = None) -> str:
    with path.open("rb") as fh:
        response = await client.post("/service/probe", files={"file": (name or path.name, fh, "audio/wav")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"] == "Task queued"
    return str(body["identifier"])


async def test_probe_task_runs_on_in_process_worker(client: AsyncTestClient, tmp_path: Path) -> None:
    clip = speak("The quick brown fox jumps over the lazy dog.", tmp_path / "fox.wav")
    identifier = await _probe(client, clip)
    task = await wait_for_status(client, identifier, {"completed", "failed"}, timeout=30)
    assert task["status"] == "completed", task
    assert task["identifier"] == identifier
    assert task["progress"] == 1.0
    assert 1.5 < task["result"]["duration"] < 4.0
    assert task["result"]["sample_rate"] == 16000
    assert task["metadata"]["task_type"] == "media_probe"
    assert task["metadata"]["file_name"] == "fox.wav"
    assert task["metadata"]["attempts"] == 1
    assert task["metadata"]["start_time"] and task["metadata"]["end_time"]


async def test_list_newest_first_with_paging_and_status_filter(client: AsyncTestClient, tmp_path: Path) -> None:
    clip = speak("one two three", tmp_path / "n.wav")
    ids = [await _probe(client, clip, f"clip{i}.wav") for i in range(3)]
    for identifier in ids:
        await wait_for_status(client, identifier, {"completed"})
    page = (await client.get("/task/all", params={"limit": 2})).json()
    assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 0
    assert [t["identifier"] for t in page["tasks"]] == [ids[2], ids[1]]
    rest = (await client.get("/task/all", params={"limit": 2, "offset": 2})).json()
    assert [t["identifier"] for t in rest["tasks"]] == [ids[0]]
    assert (await client.get("/task/all", params={"status": "completed"})).json()["total"] == 3
    assert (await client.get("/task/all", params={"status": "failed"})).json()["tasks"] == []


async def test_cursor_pages_walk_the_list_once_even_while_tasks_arrive(client: AsyncTestClient, tmp_path: Path) -> None:
    clip = speak("one two three", tmp_path / "c.wav")
    ids = [await _probe(client, clip, f"cursor{i}.wav") for i in range(5)]
    for identifier in ids:
        await wait_for_status(client, identifier, {"completed"})
    everything = [t["identifier"] for t in (await client.get("/task/all", params={"limit": 1000})).json()["tasks"]]
    seen: list[str] = []
    cursor = None
    for page_number in range(len(everything) + 1):
        params: dict[str, object] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/task/all", params=params)).json()
        seen += [t["identifier"] for t in page["tasks"]]
        cursor = page["next_cursor"]
        if page_number == 0:  # a task that arrives meanwhile does not shift the pages after this one
            await _probe(client, clip, "late.wav")
        if cursor is None:
            break
    assert seen == everything and set(ids) <= set(seen)
    completed = (await client.get("/task/all", params={"limit": 1, "status": "completed"})).json()
    after = (
        await client.get("/task/all", params={"limit": 1, "status": "completed", "cursor": completed["next_cursor"]})
    ).json()
    assert after["tasks"] and after["tasks"][0]["identifier"] != completed["tasks"][0]["identifier"]
    _assert_error(await client.get("/task/all", params={"cursor": "not-a-cursor"}), 422, "INVALID_CURSOR", "cursor")
    both = await client.get("/task/all", params={"cursor": completed["next_cursor"], "offset": 3})
    _assert_error(both, 422, "CONFLICTING_PARAMETER", "offset")


async def test_etag_lets_a_poller_skip_an_unchanged_task(client: AsyncTestClient, tmp_path: Path) -> None:
    clip = speak("one two three", tmp_path / "e.wav")
    first_id, second_id = await _probe(client, clip, "e1.wav"), await _probe(client, clip, "e2.wav")
    for identifier in (first_id, second_id):
        await wait_for_status(client, identifier, {"completed"})
    first = await client.get(f"/task/{first_id}")
    etag = first.headers["etag"]
    assert etag.startswith('"') and first.headers["cache-control"] == "no-cache"
    unchanged = await client.get(f"/task/{first_id}", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == etag
    listed = await client.get(f"/task/{first_id}", headers={"If-None-Match": f'"other", W/{etag}'})
    assert listed.status_code == 304
    stale = await client.get(f"/task/{first_id}", headers={"If-None-Match": '"stale"'})
    assert stale.status_code == 200 and stale.json() == first.json() and stale.headers["etag"] == etag
    # another task (another body) has another tag
    assert (await client.get(f"/task/{second_id}")).headers["etag"] != etag


async def test_delete_both_paths(client: AsyncTestClient, tmp_path: Path, settings: Settings) -> None:
    clip = speak("delete me", tmp_path / "d.wav")
    first, second = await _probe(client, clip), await _probe(client, clip)
    for identifier in (first, second):
        await wait_for_status(client, identifier, {"completed"})
    assert (await client.delete(f"/task/{first}/delete")).json() == {"identifier": first, "message": "Task deleted"}
    assert (await client.delete(f"/task/{second}")).status_code == 200
    for identifier in (first, second):
        response = await client.get(f"/task/{identifier}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "TASK_NOT_FOUND"
    assert (await client.delete(f"/task/{first}")).status_code == 404
    # a completed task's media is kept for playback (MEDIA_RETENTION_H) and deleted with the task
    assert not any(settings.media_dir.glob("*"))


def _assert_error(response, status: int, code: str | None = None, param: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "code", "param"}
    assert body["error"]["message"]
    expected_type = "server_error" if status >= 500 else "invalid_request_error"
    assert body["error"]["type"] == expected_type
    if code:
        assert body["error"]["code"] == code
    if param:
        assert body["error"]["param"] == param
    return body["error"]


async def test_error_shape_for_bad_ids_queries_and_routes(client: AsyncTestClient) -> None:
    _assert_error(await client.get(f"/task/{uuid.uuid4()}"), 404, "TASK_NOT_FOUND", "identifier")
    _assert_error(await client.get("/task/not-a-uuid"), 404, "TASK_NOT_FOUND", "identifier")
    _assert_error(await client.get("/task/' OR 1=1 --"), 404, "TASK_NOT_FOUND")
    _assert_error(await client.get("/task/all", params={"limit": 0}), 422, "VALIDATION_ERROR", "limit")
    _assert_error(await client.get("/task/all", params={"limit": 5000}), 422, "VALIDATION_ERROR", "limit")
    _assert_error(await client.get("/task/all", params={"limit": "ten"}), 422, "VALIDATION_ERROR", "limit")
    _assert_error(await client.get("/task/all", params={"offset": -1}), 422, "VALIDATION_ERROR", "offset")
    _assert_error(await client.get("/task/all", params={"status": "bogus"}), 422, "VALIDATION_ERROR", "status")
    _assert_error(await client.get("/no/such/route"), 404, "NOT_FOUND")
    _assert_error(await client.post("/task/all"), 405, "METHOD_NOT_ALLOWED")
    _assert_error(await client.put("/health"), 405, "METHOD_NOT_ALLOWED")


async def test_bad_uploads_are_refused_before_anything_is_queued(
    client: AsyncTestClient, tmp_path: Path, settings: Settings
) -> None:
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    with text_file.open("rb") as fh:
        error = _assert_error(await client.post("/service/probe", files={"file": ("notes.txt", fh)}), 415)
    assert error["code"] == "UNSUPPORTED_FILE_TYPE" and ".wav" in error["message"]
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + bytes(range(256)) * 20)
    with corrupt.open("rb") as fh:
        _assert_error(
            await client.post("/service/probe", files={"file": ("corrupt.wav", fh)}), 400, "AUDIO_PROCESSING_ERROR"
        )
    _assert_error(
        await client.post("/service/probe", files={"file": ("empty.mp3", b"")}), 400, "AUDIO_PROCESSING_ERROR"
    )
    error = _assert_error(await client.post("/service/probe", files={"other": ("a.wav", b"x")}), 422)
    assert error["code"] == "UNKNOWN_PARAMETER" and error["param"] == "other"
    _assert_error(await client.post("/service/probe", data={"file": "x"}), 400, "BAD_REQUEST")
    assert (await client.get("/task/all")).json()["total"] == 0
    assert not any(settings.media_dir.glob("*")), "rejected uploads must not stay on disk"


async def test_request_id_generated_and_echoed(client: AsyncTestClient) -> None:
    generated = (await client.get("/health")).headers["x-request-id"]
    assert len(generated) == 32
    assert (await client.get("/health", headers={"X-Request-ID": "abc-123"})).headers["x-request-id"] == "abc-123"
    # also on errors, and a hostile value is replaced
    assert (await client.get("/nope", headers={"X-Request-ID": "req-9"})).headers["x-request-id"] == "req-9"
    replaced = (await client.get("/health", headers={"X-Request-ID": "bad value\twith tabs"})).headers["x-request-id"]
    assert replaced != "bad value\twith tabs" and len(replaced) == 32


async def test_root_is_the_web_page_and_docs_are_served(client: AsyncTestClient) -> None:
    response = await client.get("/", follow_redirects=False)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert 'href="/docs"' in response.text  # the docs one click away
    for page in ("/docs", "/docs/scalar"):
        html = (await client.get(page)).text
        # their scripts and styles come from this service, never a CDN
        assert "https://" not in html.split("<body")[0] and "/static/docs/" in html, page
    spec = (await client.get("/docs/openapi.json")).json()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "delete", "patch"}:
                continue
            assert operation.get("summary"), f"{method} {path} has no summary"
            assert operation.get("tags"), f"{method} {path} has no tags"
            if path.startswith(("/task/{", "/service")):
                assert any(code.startswith("4") for code in operation["responses"]), f"{method} {path}"


async def test_health_probes(client: AsyncTestClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    live = (await client.get("/health/live")).json()
    assert live["status"] == "ok" and live["timestamp"].startswith("20")
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
    assert ready.json()["worker"] in ("starting", "ok")


async def test_the_list_total_follows_tasks_written_by_another_process(
    client: AsyncTestClient, settings: Settings, tmp_path: Path
) -> None:
    """`total` is counted at most once a second when nothing changed here; a task another process
    (a worker on another host) writes shows within TOTAL_MAX_AGE_S, this process's own at once."""
    clip = speak("one two three", tmp_path / "t.wav")
    await wait_for_status(client, await _probe(client, clip), {"completed"})
    assert (await client.get("/task/all")).json()["total"] == 1
    config = make_db_config(settings, null_pool=True)
    async with config.get_session() as session:  # another process's row
        session.add(Task(id=uuid.uuid4(), status="failed", task_type="media_probe", params={}, progress=0.0))
        await session.commit()
    await config.get_engine().dispose()
    deadline = time.monotonic() + TOTAL_MAX_AGE_S + 5
    while (total := (await client.get("/task/all")).json()["total"]) != 2:
        assert time.monotonic() < deadline, total
        await asyncio.sleep(0.1)
    assert len((await client.get("/task/all")).json()["tasks"]) == 2  # the rows are never cached
    await wait_for_status(client, await _probe(client, clip), {"completed"})
    assert (await client.get("/task/all")).json()["total"] == 3  # this process's: at once
