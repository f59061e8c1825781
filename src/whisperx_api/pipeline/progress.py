"""Thread-safe progress: pipeline stages write, the job's reporter loop reads."""

from __future__ import annotations

import threading
from collections.abc import Callable

ProgressCallback = Callable[[str, float], None]


class Progress:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stage: str | None = None
        self._fraction = 0.0
        self._version = 0

    def __call__(self, stage: str, fraction: float) -> None:
        with self._lock:
            self._stage = stage
            self._fraction = min(1.0, max(0.0, fraction))
            self._version += 1

    def snapshot(self) -> tuple[int, str | None, float]:
        with self._lock:
            return self._version, self._stage, self._fraction


def stage_span(progress: ProgressCallback, stage: str, start: float, end: float) -> ProgressCallback:
    """Map a stage's own 0..1 onto its share [start, end] of the whole task."""
    return lambda _stage, fraction: progress(stage, start + (end - start) * fraction)
