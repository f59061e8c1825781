"""Pipeline result -> OpenAI response bodies."""

from __future__ import annotations

import zlib
from typing import Any

from whisperx.utils import LANGUAGES

from whisperx_api.openai_api.schemas import Segment, VerboseTranscript, Word


def compression_ratio(text: str) -> float:
    """Whisper's measure (faster-whisper's get_compression_ratio; importing that module loads
    CTranslate2, which the web process otherwise never needs)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))


def full_text(result: dict[str, Any]) -> str:
    return " ".join(str(s.get("text", "")).strip() for s in result["segments"] if str(s.get("text", "")).strip())


def verbose(result: dict[str, Any], task: str, words: bool) -> VerboseTranscript:
    segments = []
    for index, s in enumerate(result["segments"]):
        text = " " + str(s["text"]).strip()
        segments.append(
            Segment(
                id=index,
                seek=int(s.get("seek", round(s["start"] * 100))),
                start=float(s["start"]),
                end=float(s["end"]),
                text=text,
                tokens=list(s.get("tokens") or []),
                temperature=float(s.get("temperature", 0.0)),
                avg_logprob=float(s.get("avg_logprob", 0.0)),
                compression_ratio=round(compression_ratio(text), 4),
                no_speech_prob=float(s.get("no_speech_prob", 0.0)),
            )
        )
    word_list = None
    if words:
        word_list = [
            Word(word=w["word"], start=float(w["start"]), end=float(w["end"]))
            for s in result["segments"]
            for w in s.get("words", [])
            if w.get("start") is not None
        ]
    return VerboseTranscript(
        task=task,
        language=LANGUAGES.get(result["language"], result["language"]),
        duration=float(result["duration"]),
        text=full_text(result),
        segments=segments,
        words=word_list,
    )
