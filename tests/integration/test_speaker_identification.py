"""Speaker identification end to end with the real models: enrol espeak voices from audio, then
diarize dialogues of the same voices and check the transcript names them (identification error
rate against the known turns), and auto-store speakers from one recording to name them in another."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.audio import VOICE_A, VOICE_B, dialogue, silence, speak
from tests.metrics import der, ier
from tests.support import clear_queue, make_settings, result_of, submit
from whisperx_api.app import create_app
from whisperx_api.pipeline.encoders import CAMPP_MODEL
from whisperx_api.speaker_library.vectors import default_threshold

pytestmark = pytest.mark.models

MEETING = [
    ("A", "Welcome everyone to the weekly planning meeting."),
    ("B", "Thanks, I have two updates about the new website."),
    ("A", "Great, please go ahead and share them with us."),
    ("B", "The design is finished and testing starts on Monday."),
]
FOLLOW_UP = [
    ("B", "Did you read the report I sent yesterday afternoon?"),
    ("A", "Yes, the numbers look much better than last quarter."),
    ("B", "I agree, the sales team did a wonderful job."),
    ("A", "Let us plan a small celebration for them next week."),
]
NAMES = {"A": "Alice", "B": "Bob"}
# tiny.en drops the last sentence of these dialogues (one 15 s window); base transcribes them whole
MODEL = {"model": "base", "language": "en"}
THRESHOLD = default_threshold(CAMPP_MODEL)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("voices")
    return {
        # one enrolment clip per voice, saying something the dialogues never say
        "alice": speak("My name is Alice and I look after the budget of our small company.", root / "a.wav", VOICE_A),
        "alice_again": speak("Numbers and plans are what I enjoy most at work.", root / "a2.wav", VOICE_A),
        "bob": speak("Hello, this is Bob speaking, I work on the design of our products.", root / "b.wav", VOICE_B),
        "meeting": (root / "meeting.wav", dialogue(MEETING, root / "meeting.wav")),
        "follow_up": (root / "follow_up.wav", dialogue(FOLLOW_UP, root / "follow_up.wav")),
        "silence": silence(root / "silence.wav", 3.0),
        "root": root,
    }


@pytest.fixture(scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AsyncTestClient]:
    root = tmp_path_factory.mktemp("svc")
    settings = make_settings(root / "data", f"sqlite:///{root / 'records.db'}", max_concurrent_gpu_tasks=1)
    async with AsyncTestClient(app=create_app(settings), timeout=120) as test_client:
        yield test_client
    clear_queue(settings.queue_name)


async def enrol(client: AsyncTestClient, path: Path, label: str, **fields: str) -> Any:
    with path.open("rb") as fh:
        return await client.post(
            "/speakers/enroll", files={"file": (path.name, fh)}, data={"speaker_label": label, **fields}
        )


async def clear_library(client: AsyncTestClient) -> None:
    for speaker in (await client.get("/speakers", params={"limit": 1000})).json()["speakers"]:
        assert (await client.delete(f"/speakers/{speaker['uuid']}")).status_code == 200


async def test_enrolled_voices_name_the_speakers_of_a_dialogue(client: AsyncTestClient, media: dict[str, Any]) -> None:
    await clear_library(client)
    for label in ("Alice", "Bob"):
        response = await enrol(client, media[label.lower()], label, description=f"{label}'s enrolment clip")
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["speaker_label"] == label and body["encoder_model"] == CAMPP_MODEL and body["dimension"] == 192
        assert 2.0 < body["speech_seconds"] <= body["audio_duration"]
    path, truth = media["meeting"]

    task = await result_of(client, await submit(client, path, identify_speakers=True, **MODEL))
    result = task["result"]
    assert result["speakers"] == ["Alice", "Bob"]
    segments = result["segments"]
    assert ier(truth, segments, NAMES) <= 0.15, (
        [(s["start"], s["end"], s["speaker"], s["text"]) for s in segments],
        result["speaker_identification"],
        truth,
    )
    for segment in segments:
        assert segment["speaker_raw"].startswith("SPEAKER_") and segment["speaker_similarity"] >= THRESHOLD
        assert all(w["speaker"] == segment["speaker"] for w in segment["words"])
    identification = result["speaker_identification"]
    assert {v["label"] for v in identification.values()} == {"Alice", "Bob"}
    assert all(v["status"] == "identified" and v["similarity"] >= THRESHOLD for v in identification.values())
    assert "speaker_embeddings" not in result  # used, but not asked for
    srt = (await client.get(f"/task/{task['identifier']}", params={"format": "srt"})).text
    assert "[Alice]" in srt and "[Bob]" in srt

    # the diarization service names them too, and returns the vectors when asked
    diarized = (
        await result_of(
            client,
            await submit(client, path, "/service/diarize", identify_speakers=True, return_embeddings=True),
        )
    )["result"]
    assert ier(truth, diarized["segments"], NAMES) <= 0.15
    assert sorted(diarized["speaker_embeddings"]) == ["SPEAKER_00", "SPEAKER_01"]

    # a second sample of Alice counts too
    assert (await enrol(client, media["alice_again"], "Alice")).status_code == 201
    alice_raw = next(s["speaker_raw"] for s in diarized["segments"] if s["speaker"] == "Alice")
    identified = (
        await client.post("/speakers/identify", json={"embedding": diarized["speaker_embeddings"][alice_raw]})
    ).json()
    assert (
        identified["speaker_label"] == "Alice" and identified["samples"] == 2 and identified["similarity"] >= THRESHOLD
    )


async def test_auto_stored_speakers_are_named_in_the_next_recording(
    client: AsyncTestClient, media: dict[str, Any]
) -> None:
    await clear_library(client)
    path, truth = media["meeting"]
    first = await result_of(client, await submit(client, path, "/service/diarize", auto_store_speakers=True))
    task_id = first["identifier"]
    report = first["result"]["speaker_identification"]
    assert {v["status"] for v in report.values()} == {"stored"}
    assert der(truth, first["result"]["segments"]) <= 0.15
    # without identify_speakers, the transcript keeps the diarizer's labels
    assert first["result"]["speakers"] == ["SPEAKER_00", "SPEAKER_01"]
    stored = (await client.get("/speakers", params={"task_uuid": task_id})).json()
    assert stored["total"] == 2
    assert {s["speaker_label"] for s in stored["speakers"]} == {v["stored_label"] for v in report.values()}
    # which stored label belongs to which true voice (the first turn is A's)
    first_turn_raw = first["result"]["segments"][0]["speaker"]
    label_of = {truth[0].speaker: report[first_turn_raw]["stored_label"]}
    label_of["B" if truth[0].speaker == "A" else "A"] = next(
        v["stored_label"] for raw, v in report.items() if raw != first_turn_raw
    )

    follow_path, follow_truth = media["follow_up"]
    second = await result_of(
        client, await submit(client, follow_path, identify_speakers=True, auto_store_speakers=True, **MODEL)
    )
    result = second["result"]
    assert ier(follow_truth, result["segments"], label_of) <= 0.15, result["segments"]
    assert {v["status"] for v in result["speaker_identification"].values()} == {"identified"}
    # known voices are not stored again
    assert (await client.get("/speakers", params={"task_uuid": second["identifier"]})).json()["total"] == 0
    assert (await client.get("/speakers")).json()["total"] == 2

    # deleting the task's speakers empties the library again
    assert (await client.delete("/speakers", params={"task_uuid": task_id})).json()["deleted"] == 2


async def test_enrolment_refuses_what_it_cannot_use(client: AsyncTestClient, media: dict[str, Any]) -> None:
    before = (await client.get("/speakers")).json()["total"]
    no_speech = await enrol(client, media["silence"], "Nobody")
    assert no_speech.status_code == 422 and no_speech.json()["error"]["code"] == "NO_SPEECH", no_speech.text
    text_file = media["root"] / "notes.txt"
    text_file.write_text("not audio")
    assert (await enrol(client, text_file, "Nobody")).status_code == 415
    fake = media["root"] / "fake.wav"
    fake.write_bytes(b"RIFF" + b"\0" * 100)
    bad = await enrol(client, fake, "Nobody")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "AUDIO_PROCESSING_ERROR", bad.text
    with media["alice"].open("rb") as fh:
        unlabelled = await client.post("/speakers/enroll", files={"file": ("a.wav", fh)})
    assert unlabelled.status_code == 422 and unlabelled.json()["error"]["param"] == "speaker_label"
    assert (await client.get("/speakers")).json()["total"] == before  # nothing half-written
    # asking a task without diarization to identify speakers is refused up front
    with media["alice"].open("rb") as fh:
        refused = await client.post(
            "/service/transcribe", files={"file": ("a.wav", fh)}, data={"identify_speakers": "true"}
        )
    assert refused.status_code == 422 and refused.json()["error"]["param"] == "identify_speakers"
    with media["alice"].open("rb") as fh:
        refused = await client.post(
            "/speech-to-text", files={"file": ("a.wav", fh)}, data={"auto_store_speakers": "true", "diarize": "false"}
        )
    assert refused.status_code == 422 and refused.json()["error"]["param"] == "auto_store_speakers"
