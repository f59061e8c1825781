"""A task's events (server-sent events, followed on a real server process), its media for
playback (range requests, retention) and renaming its speakers, with the real worker, Redis and
SQLite."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from litestar.testing import AsyncTestClient

from tests.audio import speak
from tests.speech_corpus import Recording, espeak_dialogue
from tests.support import clear_queue, free_port, make_settings, settings_env, start_server, submit, wait_for_status
from whisperx_api.app import create_app
from whisperx_api.db.models import TaskType
from whisperx_api.pipeline.results import Segment, Transcript
from whisperx_api.settings import Settings
from whisperx_api.transcription.params import KnownSpeaker, TaskParams, encode_params
from whisperx_api.transcription.service import Submission, TranscriptionService
from whisperx_api.transcription.work import PERFORM, Work

Event = tuple[str | None, str, dict[str, Any]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server: the test client of the app in-process buffers whole responses, streams included."""
    root = tmp_path_factory.mktemp("events-server")
    settings = make_settings(root / "data", f"sqlite:///{root / 'records.db'}")
    port = free_port()
    process = start_server(settings_env(settings), root / "server.log", port, timeout=180, worker_ready=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()
        clear_queue(settings.queue_name)


@pytest.fixture
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
async def svc(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[AsyncTestClient, Settings]]:
    root = tmp_path_factory.mktemp("events")
    settings = make_settings(root / "data", f"sqlite:///{root / 'records.db'}", media_retention_h=1.0)
    async with AsyncTestClient(app=create_app(settings), timeout=120) as client:
        yield client, settings
    clear_queue(settings.queue_name)


@pytest.fixture(scope="module")
async def local_service(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TranscriptionService]:
    """The app started in the tests' own event loop, for tests that call its service directly:
    the test client runs the app on a loop of its own, and a Redis or database connection made
    on one loop breaks the requests that later get it on the other."""
    root = tmp_path_factory.mktemp("events-local")
    settings = make_settings(root / "data", f"sqlite:///{root / 'records.db'}")
    app = create_app(settings)
    started, stop = asyncio.Event(), asyncio.Event()

    async def serve() -> None:  # one task enters and leaves the lifespan (its task group requires it)
        async with app.lifespan():
            started.set()
            await stop.wait()

    serving = asyncio.create_task(serve())
    await asyncio.wait_for(started.wait(), 120)
    yield app.state.transcription
    stop.set()
    await asyncio.wait_for(serving, 60)
    clear_queue(settings.queue_name)


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return espeak_dialogue("us-male", "female-3", tmp_path_factory.mktemp("dialogue"))


async def read_events(
    client: httpx.AsyncClient, identifier: str, last_event_id: str | None = None,
    on_event: Callable[[Event], Any] | None = None, timeout: float = 180,
) -> list[Event]:  # fmt: skip
    """(id, event name, data) of the stream until it ends; `on_event` sees each as it comes."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events: list[Event] = []

    async def read() -> None:
        async with client.stream("GET", f"/task/{identifier}/events", headers=headers) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            block: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line:
                    field, _, value = line.partition(": ")
                    block[field] = block.get(field, "") + value
                    continue
                if "data" in block:
                    event = (block.get("id"), block["event"], json.loads(block["data"]))
                    events.append(event)
                    if on_event is not None:
                        outcome = on_event(event)
                        if asyncio.iscoroutine(outcome):
                            await outcome
                block = {}

    await asyncio.wait_for(read(), timeout)
    return events


async def test_events_follow_a_task_to_its_end_and_resume_after_an_id(
    http: httpx.AsyncClient, dialogue: Recording
) -> None:
    client = http
    identifier = await submit(client, dialogue.path, "/speech-to-text")
    events = await read_events(client, identifier)
    names = [name for _, name, _ in events]
    assert names[0] in ("state", "done") and names[-1] == "done" and names.count("done") == 1, names
    assert events[-1][2]["status"] == "completed", events[-1]
    if names[0] == "state":  # the worker had not finished it before the stream opened
        stages = [data["stage"] for _, name, data in events if name == "state" and data.get("stage")]
        # sampled each second: which stages show depends on the machine's speed
        assert stages and set(stages) <= {"starting", "decoding", "vad", "transcribing", "aligning", "diarizing"}
        progress = [data["progress"] for _, name, data in events if name == "state" and "progress" in data]
        assert progress == sorted(progress), "progress never goes back"
        decoded = [data["segment"]["text"] for _, name, data in events if name == "segment"]
        assert decoded and "budget" in " ".join(decoded).lower(), decoded
        ids = [event_id for event_id, _, _ in events if event_id]
        assert len(ids) == len(set(ids)), "each event once"
        # a client that reconnects after the third event gets the rest, from Redis
        resumed = await read_events(client, identifier, last_event_id=events[2][0])
        assert resumed[-1][1] == "done" and resumed[-1][2]["status"] == "completed"
    # the result is where the done event says
    task = (await client.get(f"/task/{identifier}")).json()
    assert task["status"] == "completed" and len(task["result"]["speakers"]) == 2


async def test_events_of_a_task_that_ended_or_is_deleted(http: httpx.AsyncClient, tmp_path: Path) -> None:
    clip = speak("Short and done.", tmp_path / "short.wav")
    identifier = await submit(http, clip, "/service/transcribe")
    await wait_for_status(http, identifier, {"completed"}, timeout=120)
    events = await read_events(http, identifier)
    assert [name for _, name, _ in events] == ["done"] and events[0][2]["status"] == "completed"
    # a task deleted while followed (queued behind a longer one: one job at a time) is the
    # stream's last event
    long_clip = speak("This recording is a little longer than the others. " * 5, tmp_path / "long.wav")
    busy = await submit(http, long_clip, "/speech-to-text")
    waiting = await submit(http, clip, "/service/transcribe")

    async def delete_when_followed(event: Event) -> None:
        if event[1] == "state":
            assert (await http.delete(f"/task/{waiting}")).status_code == 200

    followed = await read_events(http, waiting, on_event=delete_when_followed)
    assert [name for _, name, _ in followed] == ["state", "deleted"], followed
    assert (await http.get(f"/task/{waiting}/events")).json()["error"]["code"] == "TASK_NOT_FOUND"
    assert (await wait_for_status(http, busy, {"completed", "failed"}, timeout=180))["status"] == "completed"


async def test_events_refuse_a_bad_resume_point_and_unknown_tasks(http: httpx.AsyncClient) -> None:
    client = http
    unknown = "00000000-0000-4000-8000-000000000000"
    assert (await client.get(f"/task/{unknown}/events")).status_code == 404
    response = await client.get(f"/task/{unknown}/events", headers={"Last-Event-ID": "x'; DROP"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "INVALID_EVENT_ID"
    assert (await client.get("/task/not-a-uuid/events")).status_code == 404


async def test_audio_is_served_with_ranges_while_kept(svc: tuple[AsyncTestClient, Settings], tmp_path: Path) -> None:
    client, _ = svc
    clip = speak("Play me back from anywhere.", tmp_path / "play.wav")
    original = clip.read_bytes()
    size = len(original)
    identifier = await submit(client, clip, "/service/transcribe")
    await wait_for_status(client, identifier, {"completed"}, timeout=120)
    whole = await client.get(f"/task/{identifier}/audio")
    assert whole.status_code == 200 and whole.content == original
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"].startswith("audio/wav")
    cases = [("bytes=0-99", 0, 99), ("bytes=100-", 100, size - 1), ("bytes=-500", size - 500, size - 1),
             (f"bytes=10-{size * 2}", 10, size - 1)]  # fmt: skip
    for header, start, end in cases:
        part = await client.get(f"/task/{identifier}/audio", headers={"Range": header})
        assert part.status_code == 206, header
        assert part.headers["content-range"] == f"bytes {start}-{end}/{size}", header
        assert part.content == original[start : end + 1], header
    for header in (f"bytes={size}-", "bytes=50-10", "bytes=-0"):
        refused = await client.get(f"/task/{identifier}/audio", headers={"Range": header})
        assert refused.status_code == 416 and refused.headers["content-range"] == f"bytes */{size}", header
        assert refused.json()["error"]["code"] == "RANGE_NOT_SATISFIABLE"
    # several ranges, or another unit: the whole file (allowed by RFC 9110)
    for header in ("bytes=0-1,5-9", "items=0-1"):
        assert (await client.get(f"/task/{identifier}/audio", headers={"Range": header})).status_code == 200
    # deleted with its task
    assert (await client.delete(f"/task/{identifier}")).status_code == 200
    assert (await client.get(f"/task/{identifier}/audio")).status_code == 404


async def test_media_is_kept_for_the_retention_then_deleted(
    svc: tuple[AsyncTestClient, Settings], tmp_path: Path
) -> None:
    client, settings = svc
    service = client.app.state.transcription
    clip = speak("Keep me for a while.", tmp_path / "keep.wav")
    kept = await submit(client, clip, "/service/transcribe")
    await wait_for_status(client, kept, {"completed"}, timeout=120)
    assert (await client.get(f"/task/{kept}/audio")).status_code == 200
    await service.expire_media()  # within MEDIA_RETENTION_H: kept
    assert (await client.get(f"/task/{kept}/audio")).status_code == 200
    settings.media_retention_h = 0.0  # the retention has passed
    try:
        assert await service.expire_media() >= 1
    finally:
        settings.media_retention_h = 1.0
    gone = await client.get(f"/task/{kept}/audio")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "MEDIA_NOT_KEPT"
    assert (await client.get(f"/task/{kept}")).json()["status"] == "completed"  # the transcript stays
    # a failed task's media is not kept (large-v3 is a valid name, but not on this machine)
    failed = await submit(client, clip, "/service/transcribe", model="large-v3")
    assert (await wait_for_status(client, failed, {"completed", "failed"}, timeout=120))["status"] == "failed"
    assert (await client.get(f"/task/{failed}/audio")).json()["error"]["code"] == "MEDIA_NOT_KEPT"
    # the file goes right after the final state is written (the state first: a crash between the
    # two must not leave a task to retry without its media), so it may outlive the status by a
    # moment
    deadline = asyncio.get_running_loop().time() + 10
    while any(p.name.startswith((kept, failed)) for p in settings.media_dir.glob("*")):
        assert asyncio.get_running_loop().time() < deadline, list(settings.media_dir.glob("*"))
        await asyncio.sleep(0.05)


async def test_renaming_a_speaker_renames_the_transcript_and_the_library_voice(
    svc: tuple[AsyncTestClient, Settings], dialogue: Recording
) -> None:
    client, _ = svc
    identifier = await submit(
        client, dialogue.path, "/speech-to-text", identify_speakers=True, auto_store_speakers=True
    )
    task = await wait_for_status(client, identifier, {"completed", "failed"}, timeout=240)
    assert task["status"] == "completed", task
    speakers = task["result"]["speakers"]
    assert len(speakers) == 2, speakers
    first, second = speakers
    stored = task["result"]["speaker_identification"][first]["stored_speaker_uuid"]

    renamed = await client.put(f"/task/{identifier}/speakers/{first}", json={"speaker_label": " Alice "})
    assert renamed.status_code == 200, renamed.text
    body = renamed.json()
    assert (body["speaker"], body["speaker_label"], body["speaker_uuid"]) == (first, "Alice", stored)
    assert sorted(body["speakers"]) == sorted(["Alice", second])
    assert (await client.get(f"/speakers/{stored}")).json()["speaker_label"] == "Alice"
    after = (await client.get(f"/task/{identifier}")).json()["result"]
    assert {s["speaker"] for s in after["segments"]} == {"Alice", second}
    assert all(s["speaker_raw"] == first for s in after["segments"] if s["speaker"] == "Alice")
    assert all(w.get("speaker") != first for s in after["segments"] for w in s["words"])
    assert "[Alice]" in (await client.get(f"/task/{identifier}", params={"format": "srt"})).text

    def error(response: Any) -> tuple[int, str]:
        return response.status_code, response.json()["error"]["code"]

    assert error(await client.put(f"/task/{identifier}/speakers/Nobody", json={"speaker_label": "X"})) == (
        404, "SPEAKER_NOT_FOUND")  # fmt: skip
    assert error(await client.put(f"/task/{identifier}/speakers/Alice", json={"speaker_label": second})) == (
        409, "SPEAKER_NAME_TAKEN")  # fmt: skip
    assert error(await client.put(f"/task/{identifier}/speakers/Alice", json={"speaker_label": "   "})) == (
        422, "VALIDATION_ERROR")  # fmt: skip
    assert error(await client.put(f"/task/{identifier}/speakers/Alice", json={"name": "Bob"}))[0] in (400, 422)
    unknown = "00000000-0000-4000-8000-000000000000"
    assert error(await client.put(f"/task/{unknown}/speakers/Alice", json={"speaker_label": "B"})) == (
        404, "TASK_NOT_FOUND")  # fmt: skip


async def test_a_client_that_leaves_while_the_final_state_is_written_leaves_it_written(
    local_service: TranscriptionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race CI met: a /v1 task finished, and its client left while the row was being closed.
    The work here is a fake (the race is at the close, not in the pipeline); the service, its
    database and Redis are real, and the final write is held open until the client has left."""
    service = local_service
    transcript = Transcript(segments=[Segment(start=0.0, end=1.0, text="done")], duration=1.0)

    async def fake_work(work: Work) -> Transcript:
        return transcript

    monkeypatch.setitem(PERFORM, TaskType.OPENAI_TRANSCRIPTION, fake_work)
    writing, release = asyncio.Event(), asyncio.Event()
    write_final = service._write_final

    async def held_write(task_id: UUID, values: dict[str, Any]) -> None:
        writing.set()
        await release.wait()
        await write_final(task_id, values)

    monkeypatch.setattr(service, "_write_final", held_write)
    task_id = await service.submit(Submission(TaskType.OPENAI_TRANSCRIPTION, TaskParams()))
    request = asyncio.ensure_future(service.run_inline(task_id))
    await asyncio.wait_for(writing.wait(), 30)
    request.cancel()  # the client goes away
    assert not service.stop(task_id, "client_disconnected")  # nothing is left to stop
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(request, 30)
    task = await service.reads.get(task_id)
    assert task is not None and task.status == "completed" and "done" in str(task.result), task


async def test_segments_decoded_at_the_end_of_the_work_come_before_done(
    local_service: TranscriptionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What CI met on a short file: whisperx decodes all its windows in one batch, so every
    segment arrives in the last moment of the work; they were dropped when the work ended before
    the next progress tick. The work is a fake that decodes and returns at once; the service,
    Redis (the events) and the database are real."""
    service = local_service
    decoded = [Segment(start=float(n), end=n + 1.0, text=f"segment {n}") for n in range(3)]

    async def fake_work(work: Work) -> Transcript:
        assert work.on_segment is not None
        for segment in decoded:
            work.on_segment(segment)
        return Transcript(segments=decoded, duration=3.0)

    monkeypatch.setitem(PERFORM, TaskType.OPENAI_TRANSCRIPTION, fake_work)
    task_id = await service.submit(Submission(TaskType.OPENAI_TRANSCRIPTION, TaskParams()))
    outcome = await asyncio.wait_for(service.run_inline(task_id), 30)
    assert outcome.status == "completed"
    redis = service.runtime.queue.redis
    published = [json.loads(fields[b"e"]) for _, fields in await redis.xrange(service.events.key(task_id))]
    kinds = [event["type"] for event in published]
    assert kinds[-1] == "done" and kinds.count("done") == 1, kinds
    texts = [event["segment"]["text"] for event in published if event["type"] == "segment"]
    assert texts == ["segment 0", "segment 1", "segment 2"], kinds


async def test_a_task_failed_as_interrupted_leaves_no_files_behind(local_service: TranscriptionService) -> None:
    """A /v1 request whose process died mid-task (killed, a power cut) is failed as interrupted
    at the next start; its media and its known-speaker reference go with it, as they would have
    when its work ended. The row is written here as the dead process left it."""
    service = local_service
    media = service.runtime.media
    task_id = uuid4()
    upload, reference = media.path_for(task_id, ".wav"), media.path_for(uuid4(), ".reference")
    media.root.mkdir(parents=True, exist_ok=True)
    upload.write_bytes(b"the request's audio")
    reference.write_bytes(b"a known speaker's voice")
    params = TaskParams(known_speakers=[KnownSpeaker(name="Ann", reference=str(reference))])
    await service.rows.insert(
        id=task_id, task_type=TaskType.OPENAI_TRANSCRIPTION.value, params=encode_params(params), status="processing",
        attempts=1, started_at=datetime.now(UTC) - timedelta(hours=2), media_path=str(upload),
    )  # fmt: skip
    await asyncio.wait_for(service.reconcile(), 60)
    task = await service.rows.get(task_id)
    assert task is not None and task.status == "failed" and task.error_code == "interrupted", task
    assert task.media_path is None
    assert not upload.exists() and not reference.exists()
