"""Word times from Whisper's cross-attention, made usable: sentences anchored to the pauses in the
audio, and no word without a duration.

The cross-attention alignment (CTranslate2's DTW over a window of up to 30 s) drifts on
conversational speech: on the real call with tiny.en, the first words of 5 of 13 utterances
started 0.3-0.64 s away from where they were spoken, and 16 % of the words came back with no
duration (two tokens on one frame). Re-aligning shorter pieces would cost a 30 s encoder pass
each (0.45 s with tiny.en on 2 cores), so the refinement works on the audio's energy instead:

1. pauses: stretches of at least PAUSE_S well below the window's speech level;
2. where a sentence ends and the next begins near a long pause (within MAX_SHIFT_S of where
   the alignment put the change), the sentences are moved to the pause's edges and their words
   re-timed in proportion to the alignment's own timing inside the sentence;
3. the first word starts at the speech onset (the alignment starts at the window's first
   frame, or squeezes the first word to nothing);
4. every word gets at least a minimum duration, taken from its neighbours or from silence;
5. once diarized, sentences are anchored the same way to the changes of speaker
   (anchor_to_turns): turns that follow each other without a pause have nothing else to go by.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from whisperx_api.pipeline.audio import SAMPLE_RATE

FRAME = 160  # 10 ms
PAUSE_S = 0.12
# Only pauses this long anchor sentences: shorter ones occur inside utterances too, and moved a
# sentence start of the real call 0.4 s the wrong way.
ANCHOR_PAUSE_S = 0.3
MAX_SHIFT_S = 0.8
MAX_TURN_SHIFT_S = 0.6
# A frame is quiet when its level (dB) is below floor + QUIET_SHARE * (speech - floor), with the
# floor and the speech level taken as the 10th and 90th percentile of the window's frames.
QUIET_SHARE = 0.3
MIN_WORD_S = 0.06
SECONDS_PER_CHARACTER = 0.03
MAX_MIN_WORD_S = 0.2
SENTENCE_END = re.compile(r"[.!?。！？]['\"”)\]]*$")


def levels(audio: np.ndarray, start: float, end: float) -> np.ndarray:
    """dB level of each 10 ms frame in [start, end)."""
    chunk = audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
    frames = len(chunk) // FRAME
    if frames == 0:
        return np.zeros(0)
    rms = np.sqrt(np.mean(chunk[: frames * FRAME].reshape(frames, FRAME).astype(np.float64) ** 2, axis=1))
    return np.asarray(20 * np.log10(np.maximum(rms, 1e-6)))


def quiet_frames(db: np.ndarray) -> np.ndarray:
    if db.size == 0:
        return np.zeros(0, dtype=bool)
    floor, speech = np.percentile(db, 10), np.percentile(db, 90)
    if speech - floor < 10:  # no clear difference between speech and background
        return np.zeros(db.size, dtype=bool)
    return np.asarray(db < floor + QUIET_SHARE * (speech - floor))


def pauses(audio: np.ndarray, start: float, end: float) -> list[tuple[float, float]]:
    """Quiet stretches of at least PAUSE_S in [start, end), as (start, end) in seconds."""
    quiet = quiet_frames(levels(audio, start, end))
    found: list[tuple[float, float]] = []
    edges = np.flatnonzero(np.diff(np.r_[0, quiet.astype(np.int8), 0]))
    for first, last in zip(edges[::2], edges[1::2], strict=True):
        if (last - first) * FRAME / SAMPLE_RATE >= PAUSE_S:
            found.append((start + first * FRAME / SAMPLE_RATE, start + last * FRAME / SAMPLE_RATE))
    return found


def speech_onset(audio: np.ndarray, start: float, end: float) -> float | None:
    """Start of the first 30 ms of sound in [start, end)."""
    loud = ~quiet_frames(levels(audio, start, end))
    run = np.convolve(loud.astype(np.int8), np.ones(3, dtype=np.int8), mode="valid")
    hits = np.flatnonzero(run == 3)
    return start + float(hits[0]) * FRAME / SAMPLE_RATE if hits.size else None


def sentences(words: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: list[list[dict[str, Any]]] = [[]]
    for word in words:
        groups[-1].append(word)
        if SENTENCE_END.search(word["word"]):
            groups.append([])
    return [g for g in groups if g]


def _nearest(anchors: list[tuple[float, float]], at: float, reach: float) -> tuple[float, float] | None:
    def distance(anchor: tuple[float, float]) -> float:
        return max(anchor[0] - at, at - anchor[1], 0.0)

    best = min(anchors, key=distance, default=None)
    return best if best is not None and distance(best) <= reach else None


def _retime(sentence: list[dict[str, Any]], start: float, end: float) -> None:
    """Move a sentence to [start, end], its words keeping their relative places."""
    old_start, old_end = sentence[0]["start"], sentence[-1]["end"]
    scale = (end - start) / (old_end - old_start) if old_end > old_start else 0.0
    step = (end - start) / len(sentence)
    for index, word in enumerate(sentence):
        if scale:
            word["start"] = start + (word["start"] - old_start) * scale
            word["end"] = start + (word["end"] - old_start) * scale
        else:  # all on one frame: spread them evenly
            word["start"], word["end"] = start + index * step, start + (index + 1) * step


def anchor(
    groups: list[list[dict[str, Any]]], anchors: list[tuple[float, float]], reach: float, onset: float | None = None
) -> None:
    """Consecutive sentences meet at the anchor (a pause, or a change of speaker) nearest to where
    the alignment put their meeting, if one is within `reach` s; each sentence's words are then
    re-timed in proportion. `onset`: where the first sentence starts (in place)."""
    groups = [g for g in groups if g]
    if not groups:
        return
    bounds = [[g[0]["start"], g[-1]["end"]] for g in groups]
    if onset is not None:
        bounds[0][0] = onset
    for i in range(len(groups) - 1):
        near = _nearest(anchors, (bounds[i][1] + bounds[i + 1][0]) / 2, reach)
        # the anchor must leave each sentence some of its own time
        if near is not None and near[0] > bounds[i][0] + 0.1 and near[1] < bounds[i + 1][1] - 0.1:
            bounds[i][1], bounds[i + 1][0] = near[0], near[1]
    for group, (start, end) in zip(groups, bounds, strict=True):
        if end > start:
            _retime(group, start, end)


def minimum_duration(word: str) -> float:
    letters = sum(ch.isalnum() for ch in word)
    return min(MAX_MIN_WORD_S, max(MIN_WORD_S, SECONDS_PER_CHARACTER * letters))


def enforce_durations(words: list[dict[str, Any]], span: tuple[float, float]) -> None:
    """Every word at least its minimum duration, in order, within `span` (in place): a word
    pushes the next ones later where it must, and the last words are pushed back from the end."""
    if not words:
        return
    wanted = [minimum_duration(w["word"]) for w in words]
    limit = span[1]
    if sum(wanted) > limit - span[0]:  # too little time for every minimum: scale them down
        factor = (limit - span[0]) / sum(wanted)
        wanted = [m * factor for m in wanted]
    clock = span[0]
    for word, least in zip(words, wanted, strict=True):
        word["start"] = max(word["start"], clock)
        word["end"] = max(word["end"], word["start"] + least)
        clock = word["end"]
    for index in range(len(words) - 1, -1, -1):
        word, least = words[index], wanted[index]
        word["end"] = min(word["end"], limit)
        word["start"] = min(word["start"], word["end"] - least)
        limit = word["start"]


def _rounded(words: list[dict[str, Any]]) -> None:
    for word in words:
        word["start"], word["end"] = round(word["start"], 3), round(word["end"], 3)


def refine(words: list[dict[str, Any]], audio: np.ndarray, span: tuple[float, float]) -> None:
    """Steps 1-4 for one aligned window's words (in place), anchored on pauses."""
    if not words:
        return
    quiet = pauses(audio, *span)
    onset = speech_onset(audio, span[0], max(words[0]["end"], span[0] + 0.05))
    anchor(sentences(words), [p for p in quiet if p[1] - p[0] >= ANCHOR_PAUSE_S], MAX_SHIFT_S, onset)
    enforce_durations(words, span)
    _rounded(words)


def anchor_to_turns(segments: list[dict[str, Any]], changes: list[tuple[float, float]]) -> None:
    """Sentences (aligned segments, in order) meet where the diarization says the speaker
    changes, when it does so near where the alignment put their meeting (in place). A change
    of speaker with no pause between is where word times drift most, and where a word given to
    the wrong side is given to the wrong person."""
    groups = [s["words"] for s in segments if s.get("words")]
    anchor(groups, changes, MAX_TURN_SHIFT_S)
    for group in groups:
        enforce_durations(group, (group[0]["start"], group[-1]["end"]))
        _rounded(group)
    for segment in segments:
        if segment.get("words"):
            segment["start"], segment["end"] = segment["words"][0]["start"], segment["words"][-1]["end"]
