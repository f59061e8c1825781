"""The inference process bounds oneDNN's primitive cache (memory.limit_native_caches) unless the
operator chose a size: CAM++ sees a new input shape with nearly every batch, and the default
1,024 cached primitives added hundreds of MB to the diarizer's peak (README "Long recordings")."""

from __future__ import annotations

import inspect

from whisperx_api.memory import ONEDNN_CACHED_PRIMITIVES, limit_native_caches
from whisperx_api.pipeline import remote


def test_the_primitive_cache_is_bounded_by_default() -> None:
    environ: dict[str, str] = {}
    limit_native_caches(environ)
    assert environ == {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": str(ONEDNN_CACHED_PRIMITIVES)}


def test_an_operators_choice_is_kept() -> None:
    environ = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "256"}
    limit_native_caches(environ)
    assert environ == {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "256"}


def test_the_inference_process_sets_it_before_the_engine_imports_torch() -> None:
    source = inspect.getsource(remote.serve)
    assert source.index("limit_native_caches()") < source.index("from whisperx_api.pipeline.engine import")
