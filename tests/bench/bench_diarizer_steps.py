"""Where the default diarizer's time goes, per audio hour, on two-voice conversations of several
lengths, one after the other in one process set up as the inference process is (its allocator
and native caches, the 5 s release, the kept buffers): a step whose CPU seconds per audio hour
rise with the length is a cost that grows faster than the recording. Give the lengths so the long
one sits between two short ones (`30 90 30`): the host's pace drifts within a go, and the mean of
the short runs on either side cancels a drift that runs one way.

Each step is timed by wrapping the function that does it (the segmentation's sliding windows,
CAM++'s batches and filterbanks, the clustering, pyannote's speaker count and reconstruction), so
the diarizer runs unchanged. CPU seconds count every thread of the process. Python's cyclic
collections during the run are timed too: in the service the inference process holds the
aligned transcript while it diarizes, objects that grow with the recording and that a full
collection walks; `--hold-result-hours H` keeps a result that size (bench_web_memory.long_result)
alive through each run, and `--alternate` runs every length without it and then with it.

    uv run python tests/bench/bench_diarizer_steps.py [--minutes 30 90 30] [--hold-result-hours 4 [--alternate]]
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

RESULTS = Path(__file__).parent / "results"


class StepClock:
    """Wall and CPU seconds and calls of each wrapped step, since the last `clear`."""

    def __init__(self) -> None:
        self.wall: defaultdict[str, float] = defaultdict(float)
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.calls: defaultdict[str, int] = defaultdict(int)

    def clear(self) -> None:
        self.wall.clear()
        self.cpu.clear()
        self.calls.clear()

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.wall[name] += time.perf_counter() - wall
                self.cpu[name] += time.process_time() - cpu
                self.calls[name] += 1

        return timed


class CollectionClock:
    """Seconds in Python's cyclic collections and how many of each generation, since `clear`."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.runs = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._heard)

    def clear(self) -> None:
        self.seconds, self.runs = 0.0, [0, 0, 0]

    def _heard(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.runs[info["generation"]] += 1


def instrument(clock: StepClock) -> None:
    """Every step of segmentation.SegmentationDiarizer.__call__ through `clock`."""
    from pyannote.audio.pipelines.utils.diarization import SpeakerDiarizationMixin as Steps

    from whisperx_api.pipeline.diarization import campp, segmentation

    steps = ("split_units", "find_units", "group_stretches", "spectral_labels", "_reconstruct", "_turns")
    functions: list[tuple[object, str, str]] = [
        *((segmentation, name, name) for name in steps),
        (segmentation.sliding, "stacked", "segmentation"),
        (campp.CamppEncoder, "embed_batch", "embed_batch"),
        (campp.CamppEncoder, "embed_tensor", "embed_tensor"),
        (campp, "fbank", "fbank"),
    ]
    for owner, attribute, step in functions:
        setattr(owner, attribute, clock.wrap(step, getattr(owner, attribute)))
    for name in ("speaker_count", "to_annotation", "to_diarization"):  # pyannote's static methods
        setattr(Steps, name, staticmethod(clock.wrap(name, getattr(Steps, name))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, nargs="+", default=[30, 90, 30])
    parser.add_argument("--hold-result-hours", type=float, default=0, help="keep a result this long alive meanwhile")
    parser.add_argument("--alternate", action="store_true", help="each length without the held result, then with")
    args = parser.parse_args()

    from whisperx_api.memory import buffers_kept, freeze_long_lived, limit_native_caches, tune_allocator

    limit_native_caches()  # as the inference process starts (pipeline/remote.py)
    tune_allocator()

    from tests.bench.bench_web_memory import long_result
    from tests.speech_corpus import espeak_conversation
    from whisperx_api.pipeline.audio import decode_audio, memory_released
    from whisperx_api.pipeline.diarization.segmentation import SegmentationDiarizer

    clock, collections = StepClock(), CollectionClock()
    instrument(clock)
    diarizer = SegmentationDiarizer("cpu")
    freeze_long_lived()  # as the engine does after loading a model (pipeline/models.py)
    held_hours = [0.0, args.hold_result_hours] if args.alternate else [args.hold_result_hours]
    workdir = RESULTS / "diarizer_memory_audio"  # shared with bench_diarizer_memory.py
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for minutes in args.minutes:
        source = workdir / f"conversation_{minutes:g}.mp3"
        if not source.exists():
            espeak_conversation(minutes, source)
        for hours in held_hours:
            held = long_result(hours) if hours else None
            audio = decode_audio(source)
            clock.clear()
            collections.clear()
            wall, cpu = time.perf_counter(), time.process_time()
            with memory_released(audio), buffers_kept():  # as engine.diarize runs it
                found = diarizer(audio, None, None, None, lambda _stage, _fraction: None)
            per_hour = 60 / minutes
            row = {
                "minutes": minutes, "held_result_hours": hours, "speakers": len(found.speakers),
                "wall_per_audio_hour_s": round((time.perf_counter() - wall) * per_hour, 1),
                "cpu_per_audio_hour_s": round((time.process_time() - cpu) * per_hour, 1),
                "collections_per_audio_hour_s": round(collections.seconds * per_hour, 2),
                "collections_by_generation": collections.runs,
                "steps_cpu_per_audio_hour_s": {name: round(s * per_hour, 2) for name, s in clock.cpu.items()},
                "steps_wall_per_audio_hour_s": {name: round(s * per_hour, 2) for name, s in clock.wall.items()},
                "calls": dict(clock.calls),
            }  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
            del audio, found, held
    (RESULTS / f"diarizer_steps_{int(time.time())}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
