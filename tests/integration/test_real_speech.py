"""Who said what, when, on real speech: the two-person telephone call that pyannote.audio ships
(with its reference turns and utterances), as recorded and as a phone line delivers it, plus
espeak-ng dialogues of three voice pairs and a four-voice meeting with overlapping turns.

The thresholds are the targets of the real-speech issue; tests/bench/eval_accuracy.py prints the
measured figures (README "Who said what") beside the other diarizers'."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.metrics import (
    der,
    first_word_offsets,
    ier,
    wer,
    word_speaker_accuracy,
    words_of,
    zero_duration_share,
)
from tests.speech_corpus import (
    VOICE_PAIRS,
    Recording,
    espeak_dialogue,
    espeak_meeting,
    exclusive_speech,
    phone_quality,
    real_call,
)
from tests.support import clear_queue, make_settings, result_of, submit
from whisperx_api.app import create_app
from whisperx_api.pipeline.encoders import CAMPP_MODEL

pytestmark = pytest.mark.models

DIANE, SHEILA = "speaker90", "speaker91"  # the call's reference labels


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("corpus")
    call = real_call()
    return {
        "call": call,
        "phone": phone_quality(call, root),
        "dialogues": [espeak_dialogue(a, b, root) for a, b in VOICE_PAIRS],
        "meeting": espeak_meeting(root),
        # enrolments: 8-9 s of each voice alone; the rest of what they say alone is for identifying
        "diane_enrol": exclusive_speech(call, DIANE, 8.3, 21.5, root / "diane_enrol.wav"),
        "sheila_enrol": exclusive_speech(call, SHEILA, 14.4, 28.5, root / "sheila_enrol.wav"),
        "diane_rest": exclusive_speech(call, DIANE, 21.5, 30.0, root / "diane_rest.wav"),
        "sheila_rest": exclusive_speech(call, SHEILA, 0.0, 14.4, root / "sheila_rest.wav"),
        "root": root,
    }


@pytest.fixture(scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AsyncTestClient]:
    root = tmp_path_factory.mktemp("svc")
    settings = make_settings(root / "data", f"sqlite:///{root / 'records.db'}")
    async with AsyncTestClient(app=create_app(settings), timeout=120) as test_client:
        yield test_client
    clear_queue(settings.queue_name)


def turns_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"start": s["start"], "end": s["end"], "speaker": s["speaker"]} for s in result["segments"]]


async def diarized(client: AsyncTestClient, recording: Recording | Path, **fields: Any) -> dict[str, Any]:
    path = recording.path if isinstance(recording, Recording) else recording
    return dict((await result_of(client, await submit(client, path, "/service/diarize", **fields)))["result"])


async def test_real_call_who_said_what_and_when(client: AsyncTestClient, corpus: dict[str, Any]) -> None:
    call: Recording = corpus["call"]
    result = (await result_of(client, await submit(client, call.path, model="tiny.en")))["result"]
    assert result["diarization"]["backend"] == "campp" and result["speakers"] == ["SPEAKER_00", "SPEAKER_01"]
    text = " ".join(s["text"] for s in result["segments"])
    # tiny.en measured 0.148 here before the new diarizer and word timing; they must not cost words.
    # The same code gave 0.160 on another host of this kind (2026-12-03: one word more, "Neither
    # did I" heard as "I need to design"; CTranslate2's int8 kernels differ by CPU), so one word
    # of margin over that
    assert wer(call.text, text) <= 0.175, text
    words = words_of(result)
    assert zero_duration_share(words) <= 0.01, [w for w in words if w["end"] <= w["start"]]
    assert all(w["end"] > w["start"] for w in words)
    assert word_speaker_accuracy(call.utterances, words) >= 0.85
    # every utterance whose first word was recognised: that word starts within 0.3 s of the
    # utterance (10 of the 13 utterances' first words are recognised by tiny.en)
    offsets = first_word_offsets(call.utterances, words)
    assert len(offsets) >= 10, offsets
    late = {i: (call.utterances[i].text, round(d, 3)) for i, d in offsets.items() if d > 0.3}
    assert not late, late
    # segments follow the speakers: one speaker per segment, every word labelled
    assert all(w["speaker"] == s["speaker"] for s in result["segments"] for w in s["words"])

    # who spoke when, on its own
    alone = await diarized(client, call)
    assert der(call.turns, turns_of(alone)) <= 0.15
    assert der(call.turns, turns_of(alone), collar=0.0) <= 0.2
    assert alone["speakers"] == ["SPEAKER_00", "SPEAKER_01"]


async def test_real_call_from_a_phone_line(client: AsyncTestClient, corpus: dict[str, Any]) -> None:
    phone: Recording = corpus["phone"]
    result = await diarized(client, phone)
    assert der(phone.turns, turns_of(result)) <= 0.20
    assert len(result["speakers"]) == 2


async def test_espeak_dialogues_and_a_meeting_with_overlaps(client: AsyncTestClient, corpus: dict[str, Any]) -> None:
    for recording in [*corpus["dialogues"], corpus["meeting"]]:
        result = await diarized(client, recording)
        assert der(recording.turns, turns_of(result)) <= 0.05, (recording.name, result["segments"])
        assert len(result["speakers"]) == len(recording.speakers), recording.name
    # where two people talk at once, both are in the diarization
    meeting: Recording = corpus["meeting"]
    result = await diarized(client, meeting)
    overlaps = [
        (max(a.start, b.start), min(a.end, b.end))
        for i, a in enumerate(meeting.turns)
        for b in meeting.turns[i + 1 :]
        if min(a.end, b.end) - max(a.start, b.start) > 0.3
    ]
    assert len(overlaps) == 3
    for start, end in overlaps:
        middle = (start + end) / 2
        talking = {s["speaker"] for s in result["segments"] if s["start"] <= middle <= s["end"]}
        assert len(talking) == 2, (start, end, result["segments"])


async def test_speaker_count_options_are_honoured(client: AsyncTestClient, corpus: dict[str, Any]) -> None:
    meeting: Recording = corpus["meeting"]
    assert len((await diarized(client, meeting, num_speakers=2))["speakers"]) == 2
    assert len((await diarized(client, meeting, max_speakers=3))["speakers"]) <= 3
    assert len((await diarized(client, meeting, min_speakers=4, max_speakers=4))["speakers"]) == 4


async def enrol(client: AsyncTestClient, path: Path, label: str) -> dict[str, Any]:
    with path.open("rb") as fh:
        response = await client.post("/speakers/enroll", files={"file": (path.name, fh)}, data={"speaker_label": label})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def voice_of(client: AsyncTestClient, path: Path) -> list[float]:
    result = await diarized(client, path, num_speakers=1, return_embeddings=True)
    (vector,) = result["speaker_embeddings"].values()
    return list(vector)


async def test_real_voices_are_identified_and_strangers_are_not(
    client: AsyncTestClient, corpus: dict[str, Any]
) -> None:
    for speaker in (await client.get("/speakers", params={"limit": 1000})).json()["speakers"]:
        await client.delete(f"/speakers/{speaker['uuid']}")
    diane = await enrol(client, corpus["diane_enrol"], "Diane")
    sheila = await enrol(client, corpus["sheila_enrol"], "Sheila")
    assert diane["encoder_model"] == sheila["encoder_model"] == CAMPP_MODEL and diane["dimension"] == 192
    assert 7.5 <= diane["speech_seconds"] <= 9.5 and 8.5 <= sheila["speech_seconds"] <= 10.0

    # closed set: what each says elsewhere in the call is theirs
    for clip, who in (("diane_rest", "Diane"), ("sheila_rest", "Sheila")):
        response = await client.post("/speakers/identify", json={"embedding": await voice_of(client, corpus[clip])})
        assert response.status_code == 200, response.text
        body = response.json()
        # and only theirs: the other voice of the call is not a candidate at the default threshold
        assert [c["speaker_label"] for c in body["candidates"]] == [who], body

    # a voice nobody enrolled stays unknown at the default threshold: Sheila, once she is gone...
    assert (await client.delete(f"/speakers/{sheila['uuid']}")).status_code == 200
    stranger = await client.post(
        "/speakers/identify", json={"embedding": await voice_of(client, corpus["sheila_rest"])}
    )
    assert stranger.status_code == 404 and stranger.json()["error"]["code"] == "SPEAKER_NOT_IDENTIFIED"
    # ... and a synthetic one
    espeak = await client.post(
        "/speakers/identify", json={"embedding": await voice_of(client, corpus["dialogues"][0].path)}
    )
    assert espeak.status_code == 404, espeak.text


async def test_the_call_is_named_by_its_enrolled_voices(client: AsyncTestClient, corpus: dict[str, Any]) -> None:
    for speaker in (await client.get("/speakers", params={"limit": 1000})).json()["speakers"]:
        await client.delete(f"/speakers/{speaker['uuid']}")
    await enrol(client, corpus["diane_enrol"], "Diane")
    await enrol(client, corpus["sheila_enrol"], "Sheila")
    call: Recording = corpus["call"]
    result = await diarized(client, call, identify_speakers=True)
    assert result["speakers"] == ["Diane", "Sheila"]
    names = {DIANE: "Diane", SHEILA: "Sheila"}
    assert ier(call.turns, turns_of(result), names) <= 0.15
