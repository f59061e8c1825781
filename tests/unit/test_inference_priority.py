"""Inference threads, and the threads they start, run below the web thread's CPU priority."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from whisperx_api.pipeline.engine import INFERENCE_NICE, SpeechEngine
from whisperx_api.pipeline.options import EngineConfig


def own_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def nice_of_inference_and_its_child() -> tuple[int, int]:
    seen: list[int] = []
    child = threading.Thread(target=lambda: seen.append(own_nice()))  # as an OpenMP team would be
    child.start()
    child.join()
    return own_nice(), seen[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are a Linux feature")
def test_inference_threads_run_at_lower_priority(tmp_path: Path) -> None:
    engine = SpeechEngine(EngineConfig(models_dir=tmp_path))
    try:
        inference, child = engine.executor.submit(nice_of_inference_and_its_child).result()
    finally:
        engine.executor.shutdown()
    web = own_nice()
    assert inference == child == min(19, web + INFERENCE_NICE) and inference > web
