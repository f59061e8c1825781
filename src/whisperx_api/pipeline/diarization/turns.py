"""What every diarizer returns: speaker turns (overlaps allowed), the same without overlaps, and a
vector per speaker."""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SpeakerTurn:
    start: float
    end: float
    speaker: str


@dataclass
class Diarization:
    """`turns` may overlap (two people talking at once); `exclusive` gives each instant to one
    speaker at most, which is what assigning words to speakers wants."""

    turns: list[SpeakerTurn]
    embeddings: dict[str, list[float]]
    backend: str
    model: str
    encoder: str  # the model of `embeddings`, as the speaker library records it
    exclusive: list[SpeakerTurn] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.exclusive:
            self.exclusive = list(self.turns)

    @property
    def speakers(self) -> list[str]:
        return sorted({t.speaker for t in self.turns})

    def describe(self) -> dict[str, str]:
        """What the result says about the diarizer."""
        return {"backend": self.backend, "model": self.model, "encoder_model": self.encoder}


def normalise(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm > 0 else vector.astype(np.float32)


def first_appearance_names(labels: Sequence[Hashable]) -> dict[Any, str]:
    """SPEAKER_00 for whoever speaks first, SPEAKER_01 for the next new voice, ..."""
    names: dict[Any, str] = {}
    for label in labels:
        names.setdefault(label, f"SPEAKER_{len(names):02d}")
    return names


# Turns shorter than this are left out when looking for changes of speaker: the diarization's
# slivers (0.02-0.25 s) at the edges of real turns are where it is least sure who speaks.
MIN_CHANGE_TURN_S = 0.3


def speaker_changes(turns: list[SpeakerTurn], within: float = 1.0) -> list[tuple[float, float]]:
    """Where one speaker stops and another starts within `within` s: (end of one, start of the
    next), a point where they touch."""
    ordered = sorted((t for t in turns if t.end - t.start >= MIN_CHANGE_TURN_S), key=lambda t: t.start)
    return [
        (min(a.end, b.start), max(a.end, b.start))
        for a, b in itertools.pairwise(ordered)
        if a.speaker != b.speaker and b.start - a.end <= within
    ]
