"""The default diarizer counts voices right, with its real models: short two-voice conversations
on which the largest eigengap (the rule before 2026-12-06) found 11, 16 and 20 speakers
(pipeline/diarization/clustering.py first_clear_gap), and one real voice alone, which got a
second speaker from the reconstruction's padding where segmentation saw overlap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.metrics import der
from tests.speech_corpus import espeak_conversation, exclusive_speech, real_call

pytestmark = [pytest.mark.models, pytest.mark.slow]


@pytest.fixture(scope="module")
def diarizer() -> Any:
    from whisperx_api.pipeline.diarization.segmentation import SegmentationDiarizer

    return SegmentationDiarizer("cpu")


@pytest.mark.parametrize(("minutes", "seed"), [(1, 8), (2, 9), (3, 7)])
def test_two_voices_are_two_speakers(diarizer: Any, tmp_path: Path, minutes: int, seed: int) -> None:
    from whisperx_api.pipeline.audio import decode_audio

    recording = espeak_conversation(minutes, tmp_path / "conversation.mp3", seed=seed)

    found = diarizer(decode_audio(recording.path), None, None, None, lambda _stage, _fraction: None)

    assert found.speakers == ["SPEAKER_00", "SPEAKER_01"]
    turns = [{"start": t.start, "end": t.end, "speaker": t.speaker} for t in found.exclusive]
    assert der(recording.turns, turns) < 0.1


def test_one_real_voice_is_one_speaker(diarizer: Any, tmp_path: Path) -> None:
    from whisperx_api.pipeline.audio import decode_audio

    call = real_call()
    voice = sorted(call.speakers)[0]
    path = exclusive_speech(call, voice, 0.0, call.duration, tmp_path / "one_voice.wav")

    found = diarizer(decode_audio(path), None, None, None, lambda _stage, _fraction: None)

    assert found.speakers == ["SPEAKER_00"], found.turns
    assert list(found.embeddings) == ["SPEAKER_00"]
