"""Word-time refinement on synthetic audio and word lists (no models)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from whisperx_api.pipeline import word_timing
from whisperx_api.pipeline.audio import SAMPLE_RATE


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def quiet(seconds: float) -> np.ndarray:
    return (0.0005 * np.random.default_rng(0).standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


def w(word: str, start: float, end: float) -> dict[str, Any]:
    return {"word": word, "start": start, "end": end}


def test_no_word_is_left_without_a_duration() -> None:
    words = [w("I", 1.0, 1.0), w("didn't", 1.0, 1.3), w("know", 1.3, 1.3), w("that.", 1.3, 1.3)]
    word_timing.enforce_durations(words, (0.8, 2.0))
    assert all(x["end"] - x["start"] >= 0.059 for x in words)
    starts = [x["start"] for x in words]
    assert starts == sorted(starts)
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(words))
    assert words[0]["start"] == 1.0 and words[-1]["end"] <= 2.0


def test_too_little_time_shares_what_there_is() -> None:
    words = [w("extraordinary", 1.0, 1.0), w("circumstances", 1.0, 1.0)]
    word_timing.enforce_durations(words, (1.0, 1.1))
    assert words[0]["start"] == 1.0 and words[1]["end"] <= 1.1
    assert all(x["end"] > x["start"] for x in words)


def test_pauses_are_found_in_the_audio() -> None:
    audio = np.concatenate([quiet(0.5), tone(1.0), quiet(0.6), tone(1.0), quiet(0.1), tone(0.5)])
    found = word_timing.pauses(audio, 0.0, len(audio) / SAMPLE_RATE)
    # the leading quiet, the 0.6 s pause; the 0.1 s gap is too short to count
    assert [(round(a, 1), round(b, 1)) for a, b in found] == [(0.0, 0.5), (1.5, 2.1)]
    assert abs(word_timing.speech_onset(audio, 0.0, 3.0) - 0.5) < 0.02


def test_sentences_meet_at_the_pause_between_them() -> None:
    # speech 0.5-1.5 ("Hello."), pause 1.5-2.1, speech 2.1-3.1 ("Oh, hello."); the alignment drifted
    audio = np.concatenate([quiet(0.5), tone(1.0), quiet(0.6), tone(1.0), quiet(0.4)])
    words = [w("Hello.", 0.9, 1.9), w("Oh,", 1.9, 2.4), w("hello.", 2.4, 3.1)]
    word_timing.refine(words, audio, (0.0, 3.5))
    assert abs(words[0]["start"] - 0.5) < 0.05 and abs(words[0]["end"] - 1.5) < 0.05
    assert abs(words[1]["start"] - 2.1) < 0.05
    assert words[2]["end"] <= 3.1 + 1e-6


def test_a_change_of_speaker_anchors_sentences_too() -> None:
    segments = [
        {"start": 0.0, "end": 2.2, "words": [w("I", 0.0, 0.3), w("agree.", 0.3, 2.2)]},
        {"start": 2.2, "end": 3.0, "words": [w("Me", 2.2, 2.6), w("too.", 2.6, 3.0)]},
    ]
    word_timing.anchor_to_turns(segments, [(1.8, 1.8)])
    assert segments[0]["end"] == 1.8 and segments[1]["start"] == 1.8
    assert segments[1]["words"][0]["start"] == 1.8
