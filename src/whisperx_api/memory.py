"""Keeping long-lived objects out of the garbage collector's full collections.

With torch, whisperx and pyannote imported a process holds over half a million objects, and
loaded models add about a hundred thousand more. A full collection walks them all: 0.6 s with
the GIL held, during which no request is answered (it was the /health p99 under load), and
longer when it runs on a low-priority inference thread. Modules and loaded models live until
the process ends or the model is unloaded, so the collector has nothing to find among them:
they are frozen (gc.freeze), and unfrozen for the one collection that follows an unload.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Take everything alive now out of sight of future collections."""
    gc.freeze()


def collect_unloaded() -> None:
    """After a model is unloaded: find its reference cycles, then freeze what is still alive."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
