"""Bad input, SSRF and callbacks on the speech endpoints (real app, worker, DB and Redis)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.audio import speak
from tests.local_http import LocalServer
from tests.support import clear_queue, make_settings, wait_for_status
from whisperx_api.app import create_app
from whisperx_api.settings import Settings

ALLOWED_HOST = "127.0.0.2"  # the only non-public address the service may fetch from in these tests


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speak("Testing the input checks.", tmp_path_factory.mktemp("in") / "clip.wav")


@pytest.fixture(scope="module")
def server(clip: Path) -> Iterator[LocalServer]:
    with LocalServer(ALLOWED_HOST, clip) as local:
        yield local


@pytest.fixture(scope="module")
async def svc(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[AsyncTestClient, Settings]]:
    root = tmp_path_factory.mktemp("svc")
    settings = make_settings(
        root / "data", f"sqlite:///{root / 'records.db'}", outbound_allowed_networks=[f"{ALLOWED_HOST}/32"],
        callback_backoff_s=0.1, max_upload_size_mb=2, url_download_timeout_s=1,
    )  # fmt: skip
    async with AsyncTestClient(app=create_app(settings), timeout=60) as client:
        yield client, settings
    clear_queue(settings.queue_name)


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body["error"]) == {"message", "type", "code", "param"}
    return body["error"]


async def post_file(client: AsyncTestClient, path: Path, endpoint: str = "/speech-to-text", **fields: str) -> Any:
    with path.open("rb") as fh:
        return await client.post(endpoint, files={"file": (path.name, fh)}, data=fields)


Stored = tuple[set[str], set[Path]]


async def stored_now(client: AsyncTestClient, settings: Settings) -> Stored:
    tasks = (await client.get("/task/all", params={"limit": 1000})).json()["tasks"]
    files = set(settings.media_dir.glob("*")) if settings.media_dir.exists() else set()
    return {t["identifier"] for t in tasks}, files


@pytest.fixture
async def before(svc: tuple[AsyncTestClient, Settings]) -> Stored:
    """Tasks and media present before the test (other tests of the module share the service)."""
    return await stored_now(*svc)


async def assert_nothing_stored(client: AsyncTestClient, settings: Settings, before: Stored) -> None:
    tasks, files = await stored_now(client, settings)
    assert tasks <= before[0], "a refused request left a task"
    assert files <= before[1], "a refused request left a media file"


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"model": "no-such-model"}, "MODEL_NOT_FOUND", "model"),
        ({"model": "../../etc"}, "MODEL_NOT_FOUND", "model"),
        ({"language": "xx"}, "INVALID_LANGUAGE_CODE", "language"),
        ({"language": "de", "model": "tiny.en"}, "INVALID_LANGUAGE_CODE", "language"),
        ({"task": "translate", "model": "tiny.en"}, "TRANSLATION_UNSUPPORTED", "task"),
        ({"min_speakers": "3", "max_speakers": "2"}, "INVALID_SPEAKER_RANGE", "min_speakers"),
        ({"num_speakers": "5", "max_speakers": "2"}, "INVALID_SPEAKER_RANGE", "num_speakers"),
        ({"beam_size": "0"}, "VALIDATION_ERROR", "beam_size"),
        ({"vad_onset": "1.5"}, "VALIDATION_ERROR", "vad_onset"),
        ({"task": "summarise"}, "VALIDATION_ERROR", "task"),
        ({"temperatures": "hot"}, "VALIDATION_ERROR", "temperatures"),
        ({"callback_url": "http://127.0.0.1:9/hook"}, "SSRF_BLOCKED", "callback_url"),
        ({"callback_url": "ftp://example.com/hook"}, "SSRF_BLOCKED", "callback_url"),
    ],
)
async def test_bad_parameters_are_422_and_nothing_is_queued(
    svc: tuple[AsyncTestClient, Settings], before: Stored, clip: Path, fields: dict[str, str], code: str, param: str
) -> None:
    client, settings = svc
    error = error_of(await post_file(client, clip, **fields), 422)
    assert (error["code"], error["param"]) == (code, param)
    await assert_nothing_stored(client, settings, before)


async def test_unsupported_empty_and_corrupt_uploads(
    svc: tuple[AsyncTestClient, Settings], before: Stored, tmp_path: Path
) -> None:
    client, settings = svc
    for endpoint in ("/speech-to-text", "/service/transcribe", "/service/diarize"):
        response = await client.post(endpoint, files={"file": ("evil.exe", b"MZ\x90\x00")})
        assert error_of(response, 415)["code"] == "UNSUPPORTED_FILE_TYPE"
        response = await client.post(endpoint, files={"file": ("empty.wav", b"")})
        assert error_of(response, 400)["code"] == "AUDIO_PROCESSING_ERROR"
        response = await client.post(endpoint, files={"file": ("noise.MP3", bytes(range(256)) * 40)})
        assert error_of(response, 400)["code"] == "AUDIO_PROCESSING_ERROR"
    too_big = tmp_path / "big.wav"
    too_big.write_bytes(b"\0" * (3 * 1024 * 1024))
    assert error_of(await post_file(client, too_big), 413)["code"] == "REQUEST_TOO_LARGE"
    await assert_nothing_stored(client, settings, before)


async def test_malformed_and_schema_invalid_json_documents(
    svc: tuple[AsyncTestClient, Settings], before: Stored, clip: Path
) -> None:
    client, settings = svc
    cases = [(b"{not json", "INVALID_JSON"), (b'{"segments": [{"start": "soon"}]}', "INVALID_JSON_SCHEMA"),
             (b'{"segments": [{"start": -1, "end": 2, "text": "x"}]}', "INVALID_JSON_SCHEMA"), (b"[]", "INVALID_JSON_SCHEMA")]  # fmt: skip
    for raw, code in cases:
        with clip.open("rb") as fh:
            response = await client.post("/service/align", files={"file": ("c.wav", fh), "transcript": ("t.json", raw)})
        error = error_of(response, 422)
        assert (error["code"], error["param"]) == (code, "transcript"), raw
        if raw == b"[]":
            continue  # an empty list of turns is a valid diarization result
        good = json.dumps({"segments": [{"start": 0, "end": 1, "text": "hi"}]}).encode()
        response = await client.post(
            "/service/combine", files={"aligned_transcript": ("a.json", good), "diarization_result": ("d.json", raw)}
        )
        error = error_of(response, 422)
        assert error["param"] == "diarization_result", raw
    await assert_nothing_stored(client, settings, before)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/audio.wav",
        "http://localhost/audio.wav",
        "http://10.1.2.3/audio.wav",
        "http://192.168.0.10/audio.wav",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/audio.wav",
        "http://[::1]/audio.wav",
        "http://[::ffff:127.0.0.1]/audio.wav",
        "http://[fd00::1]/audio.wav",
        "file:///etc/passwd",
        "gopher://example.com/x",
        "http://user:pw@example.com/a.wav",
    ],
)
async def test_ssrf_targets_are_refused(svc: tuple[AsyncTestClient, Settings], before: Stored, url: str) -> None:
    client, settings = svc
    error = error_of(await client.post("/speech-to-text-url", data={"url": url}), 422)
    assert (error["code"], error["param"]) == ("SSRF_BLOCKED", "url")
    await assert_nothing_stored(client, settings, before)


async def test_redirect_to_loopback_is_refused(
    svc: tuple[AsyncTestClient, Settings], before: Stored, server: LocalServer
) -> None:
    client, settings = svc
    server.redirect_to = f"http://127.0.0.1:{server.port}/audio.wav"
    error = error_of(await client.post("/speech-to-text-url", data={"url": server.url("/redirect")}), 422)
    assert error["code"] == "SSRF_BLOCKED"
    await assert_nothing_stored(client, settings, before)


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [("/missing.wav", 422, "REMOTE_CLIENT_ERROR"), ("/broken.wav", 502, "REMOTE_SERVER_ERROR"),
     ("/page", 415, "UNSUPPORTED_FILE_TYPE"), ("/big.wav", 413, "REQUEST_TOO_LARGE"), ("/slow.wav", 504, "URL_TIMEOUT")],
)  # fmt: skip
async def test_remote_errors_become_clear_errors(
    svc: tuple[AsyncTestClient, Settings], before: Stored, server: LocalServer, path: str, status: int, code: str
) -> None:
    client, settings = svc
    assert error_of(await client.post("/speech-to-text-url", data={"url": server.url(path)}), status)["code"] == code
    await assert_nothing_stored(client, settings, before)


async def test_url_download_and_redirect_within_allowed_hosts(
    svc: tuple[AsyncTestClient, Settings], server: LocalServer
) -> None:
    client, _ = svc
    server.redirect_to = server.url("/stream")
    response = await client.post(
        "/speech-to-text-url", data={"url": server.url("/redirect"), "model": "tiny.en", "diarize": "false"}
    )
    assert response.status_code == 200, response.text
    identifier = response.json()["identifier"]
    task = (await client.get(f"/task/{identifier}")).json()
    assert task["metadata"]["url"] == server.url("/redirect") and task["metadata"]["audio_duration"] > 1
    done = await wait_for_status(client, identifier, {"completed", "failed"}, timeout=120)
    assert done["status"] == "completed", done
    assert "input" in " ".join(s["text"] for s in done["result"]["segments"]).lower()
    await client.delete(f"/task/{identifier}")


async def test_callback_is_delivered_with_retries(svc: tuple[AsyncTestClient, Settings], server: LocalServer) -> None:
    client, _ = svc
    server.callback_failures = 2
    transcript = {"language": "en", "segments": [{"start": 0.0, "end": 1.0, "text": "hello there", "words": [
        {"word": "hello", "start": 0.0, "end": 0.4}, {"word": "there", "start": 0.5, "end": 1.0}]}]}  # fmt: skip
    turns = [{"start": 0.0, "end": 0.45, "speaker": "SPEAKER_00"}, {"start": 0.45, "end": 1.0, "speaker": "SPEAKER_01"}]
    response = await client.post(
        "/service/combine",
        files={
            "aligned_transcript": ("a.json", json.dumps(transcript).encode()),
            "diarization_result": ("d.json", json.dumps(turns).encode()),
        },
        data={"callback_url": server.url("/callback")},
    )
    assert response.status_code == 200, response.text
    identifier = response.json()["identifier"]
    # a generous deadline: when this test runs first, the worker is still starting
    deadline = asyncio.get_running_loop().time() + 120
    while not server.callbacks and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    assert len(server.callbacks) == 1 and server.callback_failures == 0  # two 500s, then delivered
    body = server.callbacks[0]
    assert body["identifier"] == identifier and body["status"] == "completed"
    assert [s["speaker"] for s in body["result"]["segments"]] == ["SPEAKER_00", "SPEAKER_01"]
