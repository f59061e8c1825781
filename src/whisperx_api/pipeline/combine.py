"""Speakers per word and per segment; segments split where the speaker changes."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd
import whisperx

from whisperx_api.pipeline import word_timing
from whisperx_api.pipeline.diarization.turns import Diarization, SpeakerTurn, speaker_changes


def turns_frame(turns: list[SpeakerTurn]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"start": t.start, "end": t.end, "speaker": t.speaker} for t in turns], columns=["start", "end", "speaker"]
    )


def assign_speakers(segments: list[dict[str, Any]], turns: list[SpeakerTurn]) -> list[dict[str, Any]]:
    if not turns:
        return segments
    result = whisperx.assign_word_speakers(turns_frame(turns), {"segments": segments}, fill_nearest=True)
    return split_at_speaker_changes(list(result["segments"]))


def attribute(segments: list[dict[str, Any]], diarization: Diarization) -> list[dict[str, Any]]:
    """Aligned sentences and a diarization of the same audio: sentence boundaries moved to the
    nearby changes of speaker (word_timing.anchor_to_turns), then a speaker for every word."""
    word_timing.anchor_to_turns(segments, speaker_changes(diarization.exclusive))
    return assign_speakers(segments, diarization.exclusive)


def split_at_speaker_changes(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for segment in segments:
        words = segment.get("words") or []
        if not words:
            out.append(segment)
            continue
        groups: list[list[dict[str, Any]]] = [[]]
        speaker: str | None = None
        for word in words:
            said_by = word.get("speaker")
            if said_by is not None and speaker is not None and said_by != speaker and groups[-1]:
                groups.append([])
            if said_by is not None:
                speaker = said_by
            groups[-1].append(word)
        for group in groups:
            timed = [w for w in group if w.get("start") is not None]
            votes = Counter(w["speaker"] for w in group if w.get("speaker"))
            piece = {
                "start": timed[0]["start"] if timed else segment.get("start"),
                "end": timed[-1]["end"] if timed else segment.get("end"),
                "text": " ".join(w["word"] for w in group),
                "words": group,
            }
            if votes:
                piece["speaker"] = votes.most_common(1)[0][0]
            elif segment.get("speaker"):
                piece["speaker"] = segment["speaker"]
            out.append(piece)
    return out
