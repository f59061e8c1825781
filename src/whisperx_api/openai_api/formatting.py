"""Pipeline result -> OpenAI response bodies."""

from __future__ import annotations

import zlib

from whisperx.utils import LANGUAGES

from whisperx_api.openai_api.schemas import Segment, VerboseTranscript, Word
from whisperx_api.pipeline.results import Transcript


def compression_ratio(text: str) -> float:
    """Whisper's measure (faster-whisper's get_compression_ratio; importing that module loads
    CTranslate2, which the web process otherwise never needs)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))


def verbose(result: Transcript, task: str, words: bool) -> VerboseTranscript:
    segments = []
    for index, s in enumerate(result.segments):
        text = " " + s.text.strip()
        start = s.start or 0.0
        segments.append(
            Segment(
                id=index,
                seek=s.seek if s.seek is not None else round(start * 100),
                start=start,
                end=s.end if s.end is not None else start,
                text=text,
                tokens=list(s.tokens),
                temperature=s.temperature or 0.0,
                avg_logprob=s.avg_logprob or 0.0,
                compression_ratio=round(compression_ratio(text), 4),
                no_speech_prob=s.no_speech_prob or 0.0,
            )
        )
    word_list = None
    if words:
        word_list = [
            Word(word=w.word, start=w.start, end=w.end if w.end is not None else w.start)
            for s in result.segments
            for w in s.words
            if w.start is not None
        ]
    language = result.language or ""
    return VerboseTranscript(
        task=task,
        language=LANGUAGES.get(language, language),
        duration=result.duration or 0.0,
        text=result.text,
        segments=segments,
        words=word_list,
    )
