"""What every diarizer returns: speaker turns (overlaps allowed), the same without overlaps, and a
vector per speaker."""

from __future__ import annotations

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
    exclusive: list[SpeakerTurn] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.exclusive:
            self.exclusive = list(self.turns)

    @property
    def speakers(self) -> list[str]:
        return sorted({t.speaker for t in self.turns})


def normalise(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm > 0 else vector.astype(np.float32)


def first_appearance_names(labels: Sequence[Hashable]) -> dict[Any, str]:
    """SPEAKER_00 for whoever speaks first, SPEAKER_01 for the next new voice, ..."""
    names: dict[Any, str] = {}
    for label in labels:
        names.setdefault(label, f"SPEAKER_{len(names):02d}")
    return names
