"""The official openai SDK against the real running service (granian, worker, SQLite, real models)."""

from __future__ import annotations

import base64
import math
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.audio import GERMAN, GERMAN_IN_ENGLISH, GERMAN_ONLY, GERMAN_VOICE, convert, duration, speak
from tests.metrics import normalise_text, wer
from tests.speech_corpus import VOICES, Recording, espeak_dialogue
from tests.support import clear_queue, free_port, make_settings, settings_env, start_server
from whisperx_api.settings import Settings

pytestmark = pytest.mark.models

ENGLISH = "Please remember to bring your umbrella tomorrow morning. Scientists discovered a new species of frog in the forest."


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("oa")
    return {
        "english": speak(ENGLISH, root / "english.wav"),
        "german": speak(GERMAN, root / "german.wav", GERMAN_VOICE),
        "notes": _write(root / "notes.txt", b"not audio"),
        "big": _write(root / "big.wav", b"\0" * (3 * 1024 * 1024)),
    }


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return espeak_dialogue("us-male", "female-3", tmp_path_factory.mktemp("oa-dialogue"))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("oasvc")
    return make_settings(root / "data", f"sqlite:///{root / 'records.db'}", whisper_model="base")


@pytest.fixture(scope="module")
def service(settings: Settings) -> Iterator[str]:
    root = settings.data_dir.parent
    env = {**settings_env(settings), "MAX_UPLOAD_SIZE_MB": "2", "AUTH__ENABLED": "true", "AUTH__BEARER_TOKEN": TOKEN}
    port = free_port()
    server = start_server(env, root / "server.log", port)
    yield f"http://127.0.0.1:{port}"
    server.stop()
    clear_queue(settings.queue_name)


@pytest.fixture(scope="module")
def client(service: str) -> OpenAI:
    return OpenAI(api_key=TOKEN, base_url=f"{service}/v1", max_retries=0, timeout=300)


TOKEN = "sdk-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def task_of(service: str, raw: Any) -> dict[str, Any]:
    return httpx.get(f"{service}/task/{raw.headers['x-task-id']}", headers=AUTH).json()


def test_json_and_the_persisted_task(client: OpenAI, clips: dict[str, Path], service: str) -> None:
    raw = client.audio.transcriptions.with_raw_response.create(model="tiny.en", file=clips["english"].open("rb"))
    transcript = raw.parse()
    assert isinstance(transcript, openai.types.audio.Transcription)
    assert wer(ENGLISH, transcript.text) <= 0.15, transcript.text
    assert transcript.usage is not None and transcript.usage.type == "duration"
    assert abs(transcript.usage.seconds - duration(clips["english"])) < 0.1
    task = task_of(service, raw)
    assert task["status"] == "completed" and task["metadata"]["task_type"] == "openai_transcription"
    assert task["metadata"]["task_params"]["response_format"] == "json"


@pytest.mark.parametrize(
    ("fmt", "content_type"), [("text", "text/plain"), ("srt", "application/x-subrip"), ("vtt", "text/vtt")]
)
def test_text_and_subtitle_formats(client: OpenAI, clips: dict[str, Path], fmt: str, content_type: str) -> None:
    raw = client.audio.transcriptions.with_raw_response.create(
        model="tiny.en", file=clips["english"].open("rb"), response_format=fmt
    )  # type: ignore[call-overload]
    body = raw.parse()
    assert isinstance(body, str) and raw.headers["content-type"].startswith(content_type)
    assert "umbrella tomorrow morning" in body.lower()
    if fmt == "srt":
        assert body.startswith("1\n00:00:0") and " --> " in body
    if fmt == "vtt":
        assert body.startswith("WEBVTT\n\n00:00:0")


def test_verbose_json_with_words_and_segments(client: OpenAI, clips: dict[str, Path]) -> None:
    result = client.audio.transcriptions.create(
        model="tiny.en", file=clips["english"].open("rb"), response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )  # fmt: skip
    assert isinstance(result, openai.types.audio.TranscriptionVerbose)
    assert result.language == "english"
    assert abs(result.duration - duration(clips["english"])) < 0.1
    assert wer(ENGLISH, result.text) <= 0.15
    assert result.segments and len(result.segments) == 2
    for index, segment in enumerate(result.segments):
        assert segment.id == index and segment.start < segment.end
        assert segment.tokens and all(isinstance(t, int) for t in segment.tokens)
        assert segment.avg_logprob < 0 and 0 <= segment.no_speech_prob < 0.5
        assert segment.compression_ratio > 0 and segment.temperature == 0.0
    assert result.words and len(result.words) >= 18
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and result.words[-1].end <= result.duration + 0.05
    assert normalise_text(" ".join(w.word for w in result.words)) == normalise_text(result.text)
    # beyond OpenAI: each word's probability under the decoder (the words were timed by Whisper)
    probabilities = [w.to_dict()["probability"] for w in result.words]
    assert all(0 < p <= 1 for p in probabilities) and sum(probabilities) / len(probabilities) > 0.5


def test_verbose_json_segments_only_has_no_words(client: OpenAI, clips: dict[str, Path]) -> None:
    result = client.audio.transcriptions.create(
        model="tiny.en", file=clips["english"].open("rb"), response_format="verbose_json"
    )
    assert result.segments and result.words is None


def test_language_is_detected_when_omitted(client: OpenAI, clips: dict[str, Path]) -> None:
    result = client.audio.transcriptions.create(
        model="base", file=clips["german"].open("rb"), response_format="verbose_json"
    )
    assert result.language == "german"
    assert "berlin" in normalise_text(result.text)


def test_translation_to_english(client: OpenAI, clips: dict[str, Path], service: str) -> None:
    raw = client.audio.translations.with_raw_response.create(model="whisper-1", file=clips["german"].open("rb"))
    translation = raw.parse()
    assert isinstance(translation, openai.types.audio.Translation)
    words = set(normalise_text(translation.text).split())
    assert len(words & GERMAN_IN_ENGLISH) >= 4
    assert not words & GERMAN_ONLY
    assert task_of(service, raw)["metadata"]["task_type"] == "openai_translation"
    verbose = client.audio.translations.create(
        model="whisper-1", file=clips["german"].open("rb"), response_format="verbose_json"
    )
    assert verbose.language == "german" and verbose.segments


def test_diarized_json_labels_the_speakers_as_openai_does(client: OpenAI, dialogue: Recording, service: str) -> None:
    raw = client.audio.transcriptions.with_raw_response.create(
        model="gpt-4o-transcribe-diarize", file=dialogue.path.open("rb"), response_format="diarized_json"
    )
    result = raw.parse()
    assert isinstance(result, openai.types.audio.TranscriptionDiarized)
    assert [s.speaker for s in result.segments][:1] == ["A"] and {s.speaker for s in result.segments} == {"A", "B"}
    assert all(s.type == "transcript.text.segment" and s.id for s in result.segments)
    # each speaker's utterances carry one letter, and the two letters differ
    letters: dict[str, str] = {}
    for segment in result.segments:
        middle = (segment.start + segment.end) / 2
        spoken = next((u for u in dialogue.utterances if u.start <= middle <= u.end), None)
        if spoken is not None:
            assert letters.setdefault(spoken.speaker, segment.speaker) == segment.speaker, (spoken, segment)
    assert len(set(letters.values())) == 2
    assert wer(dialogue.text, result.text) <= 0.25, result.text
    assert result.usage is not None and result.usage.type == "duration"
    assert abs(result.usage.seconds - dialogue.duration) < 0.5
    # subtitles of the diarize model carry the letters too
    srt = client.audio.transcriptions.create(
        model="gpt-4o-transcribe-diarize", file=dialogue.path.open("rb"), response_format="srt"
    )
    assert "[A] " in srt and "[B] " in srt
    assert task_of(service, raw)["result"]["diarization"] is not None


def test_diarized_json_streams_segments_with_their_speakers(client: OpenAI, dialogue: Recording) -> None:
    events = list(
        client.audio.transcriptions.create(
            model="whisper-1", file=dialogue.path.open("rb"), response_format="diarized_json", stream=True
        )
    )
    segments = [e for e in events if e.type == "transcript.text.segment"]
    done = events[-1]
    assert done.type == "transcript.text.done" and {s.speaker for s in segments} == {"A", "B"}
    assert " ".join(s.text for s in segments) == done.text
    usage = done.to_dict()["usage"]
    assert usage["type"] == "duration" and abs(usage["seconds"] - dialogue.duration) < 0.5


def test_chunking_strategy_sets_the_voice_activity_detection(
    client: OpenAI, clips: dict[str, Path], service: str
) -> None:
    auto = client.audio.transcriptions.with_raw_response.create(
        model="tiny.en", file=clips["english"].open("rb"), chunking_strategy="auto"
    )
    assert wer(ENGLISH, auto.parse().text) <= 0.15
    assert task_of(service, auto)["metadata"]["task_params"]["options"]["vad"]["vad_onset"] == 0.5
    chosen = client.audio.transcriptions.with_raw_response.create(
        model="tiny.en", file=clips["english"].open("rb"),
        chunking_strategy={"type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 200, "silence_duration_ms": 700},
    )  # fmt: skip
    assert wer(ENGLISH, chosen.parse().text) <= 0.15
    vad = task_of(service, chosen)["metadata"]["task_params"]["options"]["vad"]
    assert (vad["vad_onset"], vad["speech_pad_s"], vad["min_silence_s"]) == (0.6, 0.2, 0.7)
    assert vad["vad_offset"] < 0.6
    # curl's way: the object as JSON in the one field
    as_json = httpx.post(
        f"{service}/v1/audio/transcriptions", headers=AUTH, timeout=120,
        files={"file": clips["english"].open("rb")},
        data={"model": "tiny.en", "chunking_strategy": '{"type": "server_vad", "threshold": 0.4}'},
    )  # fmt: skip
    assert as_json.status_code == 200, as_json.text
    for bad in ({"type": "semantic_vad"}, {"type": "server_vad", "threshold": 1.5}, "fixed"):
        with pytest.raises(openai.BadRequestError) as caught:
            client.audio.transcriptions.create(
                model="tiny.en", file=clips["english"].open("rb"),
                chunking_strategy=bad,  # type: ignore[arg-type]
            )  # fmt: skip
        assert caught.value.param == "chunking_strategy", bad


def data_url(path: Path) -> str:
    return "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode()


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A few seconds of each dialogue voice saying something else, as data URLs."""
    root = tmp_path_factory.mktemp("oa-voices")
    lines = {
        "us-male": "This is my voice, recorded for the meeting notes.",
        "female-3": "Here is how I sound when I speak.",
    }
    return {voice: data_url(speak(text, root / f"{voice}.wav", VOICES[voice])) for voice, text in lines.items()}


def test_known_speakers_name_the_diarized_voices(
    client: OpenAI, dialogue: Recording, voices: dict[str, str], tmp_path: Path, settings: Settings
) -> None:
    def diarize(names: list[str], references: list[str], **extra: Any) -> Any:
        return client.audio.transcriptions.create(
            model="tiny.en", file=dialogue.path.open("rb"), response_format="diarized_json",
            known_speaker_names=names, known_speaker_references=references, **extra,
        )  # fmt: skip

    def speakers_of(result: Any) -> dict[str, str]:
        """voice -> the label its utterances got (one each)"""
        labels: dict[str, str] = {}
        for segment in result.segments:
            middle = (segment.start + segment.end) / 2
            spoken = next((u for u in dialogue.utterances if u.start <= middle <= u.end), None)
            if spoken is not None:
                assert labels.setdefault(spoken.speaker, segment.speaker) == segment.speaker, (spoken, segment)
        return labels

    both = diarize(["Grace", "Ada"], [voices["female-3"], voices["us-male"]])
    assert speakers_of(both) == {"us-male": "Ada", "female-3": "Grace"}
    # a voice nobody named keeps a letter
    one = diarize(["Grace"], [voices["female-3"]])
    assert speakers_of(one) == {"us-male": "A", "female-3": "Grace"}
    # beyond OpenAI: a reference stored in the speaker library names the voice without one later
    diarize(["Ada Lovelace"], [voices["us-male"]], extra_body={"store_known_speakers": "true"})
    from_library = diarize(["Ada Lovelace"], [])
    assert speakers_of(from_library)["us-male"] == "Ada Lovelace"

    too_short = data_url(speak("Hi.", tmp_path / "hi.wav"))
    refused = [
        (["Ada"], ["https://example.com/ada.wav"], "known_speaker_references[]"),
        (["Ada"], ["data:audio/wav;base64,not*base64"], "known_speaker_references[]"),
        (["Ada"], [too_short], "known_speaker_references[]"),
        (["Ada"], [voices["us-male"], voices["female-3"]], "known_speaker_references[]"),
        (["A", "B", "C", "D", "E"], [], "known_speaker_names[]"),
        (["Nobody Known"], [], "known_speaker_names[]"),
    ]
    for names, references, param in refused:
        with pytest.raises(openai.BadRequestError) as caught:
            diarize(names, references)
        assert caught.value.param == param, (names, caught.value)
    # the references live as long as their request, used or refused
    assert not list(settings.media_dir.glob("*.reference"))


def test_logprobs_of_each_token_from_the_decoder(client: OpenAI, clips: dict[str, Path], tmp_path: Path) -> None:
    result = client.audio.transcriptions.create(model="tiny.en", file=clips["english"].open("rb"), include=["logprobs"])
    assert result.logprobs
    assert "".join(p.token for p in result.logprobs).strip() == result.text
    assert all(p.logprob is not None and p.logprob <= 0 for p in result.logprobs)
    assert all(bytes(int(b) for b in p.bytes or []) == (p.token or "").encode() for p in result.logprobs)
    clear = math.exp(sum(p.logprob or 0 for p in result.logprobs) / len(result.logprobs))
    assert clear > 0.5  # the decoder is sure of clear synthetic speech ...
    # ... and less sure of the same words spoken over loud noise
    noisy = convert(clips["english"], tmp_path / "noisy.wav", "-af", "volume=0.3")
    subprocess.run(
        ["sox", "-R", str(noisy), str(tmp_path / "noise.wav"), "synth", "whitenoise", "vol", "0.2"],
        check=True,
        timeout=60,
    )
    mixed = subprocess.run(
        ["sox", "-R", "-m", str(noisy), str(tmp_path / "noise.wav"), str(tmp_path / "mixed.wav")],
        check=True,
        timeout=60,
    )
    assert mixed.returncode == 0
    unsure = client.audio.transcriptions.create(
        model="tiny.en", file=(tmp_path / "mixed.wav").open("rb"), include=["logprobs"]
    )
    assert unsure.logprobs
    assert math.exp(sum(p.logprob or 0 for p in unsure.logprobs) / len(unsure.logprobs)) < clear - 0.1, (
        clear,
        unsure.text,
    )
    # streaming: with the done event
    events = list(
        client.audio.transcriptions.create(
            model="tiny.en", file=clips["english"].open("rb"), include=["logprobs"], stream=True
        )
    )
    done = events[-1]
    assert done.type == "transcript.text.done" and done.logprobs
    assert "".join(p.token or "" for p in done.logprobs).strip() == done.text
    # only with json, as OpenAI takes it
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(
            model="tiny.en", file=clips["english"].open("rb"), include=["logprobs"], response_format="verbose_json"
        )
    assert caught.value.param == "include[]"


def test_streaming(client: OpenAI, clips: dict[str, Path]) -> None:
    events = list(client.audio.transcriptions.create(model="tiny.en", file=clips["english"].open("rb"), stream=True))
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    done = [e for e in events if e.type == "transcript.text.done"]
    assert deltas and len(done) == 1 and events[-1] is done[0]
    assert "".join(d.delta for d in deltas) == done[0].text
    assert wer(ENGLISH, done[0].text) <= 0.15


def test_models_list_and_retrieve(client: OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "whisper-1" and {"gpt-4o-transcribe", "gpt-4o-transcribe-diarize", "tiny.en", "base"} <= set(ids)
    assert client.models.retrieve("base").id == "base"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-4o")
    assert caught.value.code == "model_not_found"


def test_errors_raise_the_sdk_exception_classes(client: OpenAI, clips: dict[str, Path], service: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(model="no-such-model", file=clips["english"].open("rb"))
    assert caught.value.code == "model_not_found" and caught.value.param == "model"
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(model="base", file=clips["english"].open("rb"), language="klingon")
    assert caught.value.code == "INVALID_LANGUAGE_CODE"
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(
            model="tiny.en", file=clips["english"].open("rb"), timestamp_granularities=["word"]
        )
    assert str(caught.value.param).startswith("timestamp_granularities")
    with pytest.raises(openai.BadRequestError):
        client.audio.transcriptions.create(model="tiny.en", file=clips["notes"].open("rb"))
    with pytest.raises(openai.BadRequestError):
        client.audio.transcriptions.create(model="tiny.en", file=clips["english"].open("rb"), response_format="yaml")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError):
        client.audio.translations.create(model="tiny.en", file=clips["german"].open("rb"))
    with pytest.raises(openai.APIStatusError) as too_big:
        client.audio.transcriptions.create(model="tiny.en", file=clips["big"].open("rb"))
    assert too_big.value.status_code == 413 and too_big.value.code == "REQUEST_TOO_LARGE"
    # a valid model name that this offline machine does not have: the task is persisted as failed
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.with_raw_response.create(model="large-v3", file=clips["english"].open("rb"))
    assert caught.value.code == "model_not_found"
    failed = httpx.get(f"{service}/task/all", params={"status": "failed"}, headers=AUTH).json()["tasks"]
    assert any(t["error"]["code"] == "MODEL_NOT_FOUND" and t["task_type"] == "openai_transcription" for t in failed)


def test_wrong_api_key_is_an_authentication_error(service: str, clips: dict[str, Path]) -> None:
    stranger = OpenAI(api_key="not-the-token", base_url=f"{service}/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        stranger.audio.transcriptions.create(model="tiny.en", file=clips["english"].open("rb"))
    assert caught.value.code == "AUTHENTICATION_FAILED"
    with pytest.raises(openai.AuthenticationError):
        stranger.models.list()


def test_rate_limit_and_overload_raise_the_sdk_classes(tmp_path: Path, clips: dict[str, Path]) -> None:
    """A second server with a tight rate limit and one sync slot."""
    import threading
    import time

    from tests.audio import concatenate
    from tests.support import avoid_minute_edge

    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'r.db'}")
    env = {**settings_env(settings), "RATE_LIMIT__ENABLED": "true", "RATE_LIMIT__REQUESTS_PER_MINUTE": "4",
           "RATE_LIMIT__BURST": "100", "MAX_QUEUED_GPU_REQUESTS": "1"}  # fmt: skip
    port = free_port()
    server = start_server(env, tmp_path / "s.log", port, worker_ready=True)
    try:
        client = OpenAI(api_key="x", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout=120)
        long_clip = tmp_path / "long.wav"
        concatenate([clips["english"]] * 12, long_clip)
        avoid_minute_edge(10)
        holder = threading.Thread(
            target=lambda: client.audio.transcriptions.create(model="tiny.en", file=long_clip.open("rb"))
        )
        holder.start()
        time.sleep(1.0)  # the holder has uploaded and claimed the slot; its ~90 s of audio keeps it busy
        with pytest.raises(openai.InternalServerError) as overloaded:  # 503: the one sync slot is taken
            client.audio.transcriptions.create(model="tiny.en", file=clips["english"].open("rb"))
        assert overloaded.value.status_code == 503 and overloaded.value.code == "SERVICE_OVERLOADED"
        holder.join()
        with pytest.raises(openai.RateLimitError) as limited:
            for _ in range(5):
                client.models.list()
        assert limited.value.code == "RATE_LIMIT_EXCEEDED"
        assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60
    finally:
        server.stop()
        clear_queue(settings.queue_name)
