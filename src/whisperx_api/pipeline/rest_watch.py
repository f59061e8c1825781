"""When the inference process is worth replacing by a fresh one: its memory at rest has grown.

A long recording leaves the inference process resting higher than before it, and every task after
it starts from there: after a four-hour file 122 MB higher (750 -> 872 MB RSS, base, 2026-12-06),
and the one-hour tasks that followed peaked at 1,506-1,522 MB for all processes where the file
itself had stayed at 1,441. What stays is glibc's heap fragmentation in the inference thread's
arena (torch's tensors for the diarizer's embeddings, among ever-new 64 MB heaps;
docs/performance-history.md), which no trim hands back: only a new process starts clean. uWSGI's
reload-on-rss and Celery's worker_max_memory_per_child answer the same problem the same way.

The measure is growth of the process's own memory (RssAnon), not a size: loading a model raises
the rest by what the model needs, and the rest with large-v3 loaded is far above the rest with
base. So the growth counts from the lowest rest seen since the loaded models last changed, and a
model load starts the count again. Not RSS: it also counts the libraries' file pages, which a
short task leaves resident and a longer one hands back (memory.release_library_pages), 100 MB
and more apart with no growth at all.
"""

from __future__ import annotations


class RestWatch:
    """Fed the process's resident bytes and its model-load count after every call that left it
    idle; says when the rest has grown by `limit` bytes over its lowest with the same models
    (0: never)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._loads = -1
        self.lowest = 0

    def grown(self, resident: int, loads: int) -> bool:
        if self.limit <= 0:
            return False
        if loads != self._loads:  # a model loaded since: a new baseline, whatever it weighs
            self._loads, self.lowest = loads, resident
            return False
        self.lowest = min(self.lowest, resident)  # an unloaded model, a trim: the rest fell
        return resident - self.lowest >= self.limit
