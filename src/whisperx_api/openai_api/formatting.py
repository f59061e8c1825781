"""Pipeline result -> OpenAI response bodies."""

from __future__ import annotations

import re
import zlib

import msgspec
from whisperx.utils import LANGUAGES

from whisperx_api.openai_api.schemas import DiarizedSegment, DiarizedTranscript, Segment, Usage, VerboseTranscript, Word
from whisperx_api.pipeline.results import Transcript


def compression_ratio(text: str) -> float:
    """Whisper's measure (faster-whisper's get_compression_ratio; importing that module loads
    CTranslate2, which the web process otherwise never needs)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))


def usage(result: Transcript) -> Usage:
    return Usage(seconds=round(result.duration or 0.0, 3))


def _letter(index: int) -> str:
    """A, B, ... Z, AA, AB, ...: OpenAI's speaker labels."""
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = chr(ord("A") + rest) + label
    return label


RAW_LABEL = re.compile(r"^SPEAKER_\d+$")


def lettered(result: Transcript) -> Transcript:
    """The diarizer's speakers (SPEAKER_00, ...) as OpenAI labels them: A, B, ... in order of
    first appearance, in segments and words alike; speakers named after known voices keep
    their names."""
    letters: dict[str, str] = {}

    def letter(speaker: str | None) -> str | None:
        if speaker is None or not RAW_LABEL.match(speaker):
            return speaker
        return letters.setdefault(speaker, _letter(len(letters)))

    segments = [
        msgspec.structs.replace(
            s, speaker=letter(s.speaker), words=[msgspec.structs.replace(w, speaker=letter(w.speaker)) for w in s.words]
        )
        for s in result.segments
    ]
    speakers = [letter(s) or s for s in result.speakers] if result.speakers else None
    return msgspec.structs.replace(result, segments=segments, speakers=speakers)


def diarized_segments(result: Transcript) -> list[DiarizedSegment]:
    """`result` lettered; a segment that no speaker's turn covers is `unknown`."""
    return [
        DiarizedSegment(
            id=f"seg_{index}",
            start=s.start or 0.0,
            end=s.end if s.end is not None else s.start or 0.0,
            text=s.text.strip(),
            speaker=s.speaker or "unknown",
        )
        for index, s in enumerate(s for s in result.segments if s.text.strip())
    ]


def diarized(result: Transcript) -> DiarizedTranscript:
    return DiarizedTranscript(
        duration=result.duration or 0.0, text=result.text, segments=diarized_segments(result), usage=usage(result)
    )


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
        whisper_timed = (result.alignment or "").startswith("whisper")
        word_list = [
            Word(
                word=w.word,
                start=w.start,
                end=w.end if w.end is not None else w.start,
                probability=w.score if whisper_timed else None,
            )
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
        usage=usage(result),
    )
