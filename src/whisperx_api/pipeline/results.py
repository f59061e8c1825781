"""What the pipeline returns, typed: transcripts (with word timings, speakers, naming), speaker
turns, media facts and enrolments. Built where the pipeline ends (engine.py), stored as JSON in a
task's row, read back with msgspec.convert, and read by attribute everywhere else. Fields that a
stage did not produce are left out of the JSON (omit_defaults), as WhisperX results do."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class Word(msgspec.Struct, omit_defaults=True, kw_only=True):
    word: str
    start: float | None = None
    end: float | None = None
    score: float | None = None
    speaker: str | None = None


class Char(msgspec.Struct, omit_defaults=True, kw_only=True):
    """wav2vec2 alignment's per-character timing (return_char_alignments)."""

    char: str
    start: float | None = None
    end: float | None = None
    score: float | None = None


class Segment(msgspec.Struct, omit_defaults=True, kw_only=True):
    start: float | None = None
    end: float | None = None
    text: str = ""
    words: list[Word] = []
    chars: list[Char] | None = None
    speaker: str | None = None
    # a named speaker's diarization label and how similar its voice was to the library's
    speaker_raw: str | None = None
    speaker_similarity: float | None = None
    # Whisper's decoding facts of the window the segment came from (for OpenAI's verbose_json)
    tokens: list[int] = []
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    temperature: float | None = None
    compression_ratio: float | None = None
    seek: int | None = None


class Turn(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Who spoke when (turns may overlap)."""

    start: float
    end: float
    speaker: str
    speaker_raw: str | None = None
    speaker_similarity: float | None = None


class Diarizer(msgspec.Struct, kw_only=True):
    backend: str
    model: str
    encoder_model: str


class Identification(msgspec.Struct, omit_defaults=True, kw_only=True):
    """What the speaker library made of one diarized speaker."""

    status: Literal["identified", "stored", "unknown"]
    label: str | None = None
    speaker_uuid: str | None = None
    similarity: float | None = None
    closest_label: str | None = None
    stored_label: str | None = None
    stored_speaker_uuid: str | None = None


class TokenLogprob(msgspec.Struct, kw_only=True):
    """One token of the text and the decoder's log-probability of it (pipeline/logprobs.py)."""

    token: str
    bytes: list[int]
    logprob: float


class Transcript(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Transcription, alignment and combination results (and the OpenAI-compatible ones)."""

    segments: list[Segment]
    word_segments: list[Word] = []
    language: str | None = None
    language_probability: float | None = None
    duration: float | None = None
    task: str | None = None
    model: str | None = None
    vad: str | None = None
    alignment: str | None = None
    diarization: Diarizer | None = None
    speakers: list[str] | None = None
    speaker_embeddings: dict[str, list[float]] | None = None
    speaker_identification: dict[str, Identification] | None = None
    timings: dict[str, float] | None = None
    logprobs: list[TokenLogprob] | None = None

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())


class Diarized(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A diarization task's result: speaker turns."""

    segments: list[Turn]
    diarization: Diarizer
    speakers: list[str]
    duration: float | None = None
    speaker_embeddings: dict[str, list[float]] | None = None
    speaker_identification: dict[str, Identification] | None = None


class Enrolled(msgspec.Struct, kw_only=True):
    """A speaker enrolment's result: the stored voice."""

    speaker_uuid: str
    speaker_label: str
    encoder_model: str
    dimension: int
    speech_seconds: float
    audio_duration: float


def with_words(segments: list[Segment]) -> list[Word]:
    return [w for s in segments for w in s.words]


def _plain(value: object) -> object:
    """numpy scalars (the models' arithmetic) as Python numbers."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def transcript_from(raw: dict[str, Any]) -> Transcript:
    """A transcript from the pipeline stages' dicts (whose numbers may be numpy scalars)."""
    return msgspec.json.decode(msgspec.json.encode(raw, enc_hook=_plain), type=Transcript)
