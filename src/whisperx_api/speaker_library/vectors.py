"""Speaker vectors: checks, compact float32 storage, and an in-memory index searched by one
matrix-vector product (vectors are L2-normalised once, so cosine similarity is a dot product).

Indexes are immutable snapshots: a search in a worker thread keeps using the snapshot it took
while a write builds the next one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from uuid import UUID

import numpy as np

from whisperx_api.pipeline.encoders import CAMPP_MODEL, EMBEDDED_MODEL

MAX_DIMENSION = 4096
# Dimensions of the encoders this service knows; vectors from any other model must at least agree
# with the ones already stored for that model.
KNOWN_DIMENSIONS = {EMBEDDED_MODEL: 256, CAMPP_MODEL: 192}
# The cosine similarity from which two vectors count as one person, per encoder (any other: 0.7).
# resemblyzer: one voice 0.85-0.95, different espeak voices 0.55-0.67. CAM++ on the real call
# (8-9 s enrolments, 1.3-1.9 s of other speech): the same person 0.72-0.74, the other person
# on the same telephone line 0.55-0.57, an espeak voice 0.25-0.40 (tests/integration/
# test_real_speech.py); the threshold sits between.
DEFAULT_THRESHOLDS = {EMBEDDED_MODEL: 0.7, CAMPP_MODEL: 0.65}


def default_threshold(encoder_model: str) -> float:
    return DEFAULT_THRESHOLDS.get(encoder_model, 0.7)


class VectorError(ValueError):
    def __init__(self, message: str, code: str = "INVALID_EMBEDDING") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def prepare(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """A finite, non-zero vector -> float32, unit length."""
    vector = np.asarray(values, dtype=np.float64)
    if vector.ndim != 1 or vector.size == 0:
        raise VectorError("embedding must be a non-empty list of numbers")
    if vector.size > MAX_DIMENSION:
        raise VectorError(f"embedding has {vector.size} values; at most {MAX_DIMENSION} are accepted")
    if not np.all(np.isfinite(vector)):
        raise VectorError("embedding contains NaN or infinite values")
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        raise VectorError("embedding is all zeros; it has no direction to compare")
    return (vector / norm).astype(np.float32)


def check_dimension(encoder_model: str, dimension: int, stored: int | None = None) -> None:
    """A vector must have its model's dimension (known, or that of the vectors already stored)."""
    expected = KNOWN_DIMENSIONS.get(encoder_model, stored)
    if expected is not None and dimension != expected:
        raise VectorError(
            f"encoder model {encoder_model!r} makes {expected}-dimensional vectors; this one has {dimension}",
            "EMBEDDING_DIMENSION_MISMATCH",
        )


def to_bytes(vector: np.ndarray) -> bytes:
    return vector.astype("<f4").tobytes()


def from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


@dataclass(frozen=True)
class Entry:
    """What the index keeps per stored vector besides the vector itself."""

    id: UUID
    label: str
    task_id: UUID | None


@dataclass(frozen=True)
class Hit:
    entry: Entry
    similarity: float


@dataclass(frozen=True)
class VectorIndex:
    """All vectors of one (encoder model, dimension): row i of `matrix` belongs to `entries[i]`."""

    dimension: int
    matrix: np.ndarray
    entries: tuple[Entry, ...]

    @classmethod
    def empty(cls, dimension: int) -> VectorIndex:
        return cls(dimension, np.zeros((0, dimension), dtype=np.float32), ())

    @classmethod
    def from_rows(cls, dimension: int, rows: Sequence[tuple[UUID, str, UUID | None, bytes]]) -> VectorIndex:
        matrix = np.frombuffer(b"".join(r[3] for r in rows), dtype="<f4").reshape(len(rows), dimension)
        return cls(dimension, matrix.astype(np.float32), tuple(Entry(r[0], r[1], r[2]) for r in rows))

    def __len__(self) -> int:
        return len(self.entries)

    @cached_property
    def ids(self) -> frozenset[UUID]:
        return frozenset(e.id for e in self.entries)

    def with_added(self, entries: Sequence[Entry], vectors: Sequence[np.ndarray]) -> VectorIndex:
        """A new index with these rows too (rows already present are skipped)."""
        new = [(e, v) for e, v in zip(entries, vectors, strict=True) if e.id not in self.ids]
        if not new:
            return self
        matrix = np.vstack([self.matrix, np.stack([v for _, v in new]).astype(np.float32)])
        return VectorIndex(self.dimension, matrix, self.entries + tuple(e for e, _ in new))

    def without(self, ids: set[UUID]) -> VectorIndex:
        keep = [i for i, e in enumerate(self.entries) if e.id not in ids]
        if len(keep) == len(self.entries):
            return self
        return VectorIndex(self.dimension, self.matrix[keep], tuple(self.entries[i] for i in keep))

    def relabelled(self, id: UUID, label: str, task_id: UUID | None) -> VectorIndex:
        entries = tuple(Entry(e.id, label, task_id) if e.id == id else e for e in self.entries)
        return VectorIndex(self.dimension, self.matrix, entries)

    @cached_property
    def samples_per_label(self) -> Counter[str]:
        return Counter(e.label for e in self.entries)

    def _scores(self, query: np.ndarray, threshold: float, exclude_task: UUID | None) -> tuple[np.ndarray, np.ndarray]:
        """Scores of all rows, and the rows at or above `threshold`, most similar first."""
        scores = self.matrix @ query
        if exclude_task is not None:
            scores[[i for i, e in enumerate(self.entries) if e.task_id == exclude_task]] = -np.inf
        passing = np.flatnonzero(scores >= threshold)
        return scores, passing[np.argsort(-scores[passing], kind="stable")]

    def search(self, query: np.ndarray, limit: int, threshold: float, exclude_task: UUID | None = None) -> list[Hit]:
        """The `limit` most similar vectors at or above `threshold`, most similar first."""
        if not self.entries:
            return []
        scores, order = self._scores(query, threshold, exclude_task)
        return [Hit(self.entries[i], round(float(scores[i]), 6)) for i in order[:limit]]

    def best_by_label(
        self, query: np.ndarray, threshold: float, exclude_task: UUID | None = None, limit: int = 5
    ) -> list[tuple[Hit, int]]:
        """Per label, its most similar sample and how many samples it has; best labels first.

        A person enrolled from several samples is as similar as the closest of them.
        """
        if not self.entries:
            return []
        scores, order = self._scores(query, threshold, exclude_task)
        found: list[tuple[Hit, int]] = []
        seen: set[str] = set()
        for i in order:  # most similar first, so a label's first row is its best sample
            entry = self.entries[i]
            if entry.label in seen:
                continue
            seen.add(entry.label)
            found.append((Hit(entry, round(float(scores[i]), 6)), self.samples_per_label[entry.label]))
            if len(found) == limit:
                break
        return found
