"""The model cache frees an unloaded model even though loaded models are frozen out of the GC."""

from __future__ import annotations

import gc
import weakref

from whisperx_api.pipeline.models import ModelCache


class CyclicModel:
    """Like many torch modules: reachable from itself, so only the cycle collector can free it."""

    def __init__(self) -> None:
        self.me = self
        self.weights = bytearray(1024)


def test_an_unloaded_model_in_a_reference_cycle_is_freed() -> None:
    cache = ModelCache(max_models=1, idle_unload_s=0)
    try:
        with cache.use(("first",), CyclicModel) as first:
            gone = weakref.ref(first)
        del first
        assert gc.get_freeze_count() > 0  # loading froze what was alive, the model included
        with cache.use(("second",), CyclicModel):
            pass  # loading a second model evicts the first (one model at most)
        assert gone() is None
        assert cache.loads == {("first",): 1, ("second",): 1}
    finally:
        gc.unfreeze()
