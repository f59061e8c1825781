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


def start_stage(progress: ProgressCallback, stage: str, start: float, end: float) -> ProgressCallback:
    """Report `stage` as started, and map its own 0..1 onto its share [start, end] of the whole
    task. Reported now, not at its first batch's end (the stages report after each batch): the
    first batch, the decoder's a task's peak of memory, was shown and measured as the stage before."""
    progress(stage, start)
    return lambda _stage, fraction: progress(stage, start + (end - start) * fraction)
