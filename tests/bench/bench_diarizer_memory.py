"""The default diarizer's memory on its own, in this process: RssAnon every 50 ms while it runs on
an N-minute two-voice conversation, with and without the pipeline's periodic release of freed
memory (pipeline/audio.py memory_released), or with `--primitive-cache N ...` at each size of
oneDNN's primitive cache (memory.limit_native_caches; the release on). Each length and mode in a
fresh process, so one run's heap does not carry into the next.

    uv run python tests/bench/bench_diarizer_memory.py [--minutes 30 60] [--primitive-cache 1024 32]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

RESULTS = Path(__file__).parent / "results"


def rss_anon_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) // 1024
    return 0


def measure(minutes: float, release: bool, workdir: Path) -> dict[str, object]:
    """One diarization in this process: anon memory before, at its peak and after, and the time."""
    from tests.speech_corpus import espeak_conversation
    from whisperx_api.pipeline.audio import decode_audio, memory_released
    from whisperx_api.pipeline.diarization.segmentation import SegmentationDiarizer

    source = workdir / f"conversation_{minutes:g}.mp3"
    if not source.exists():
        espeak_conversation(minutes, source)
    diarizer = SegmentationDiarizer("cpu")
    audio = decode_audio(source)
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], rss_anon_mb())

    threading.Thread(target=sample, daemon=True).start()
    before = rss_anon_mb()
    started = time.monotonic()
    with memory_released(audio) if release else contextlib.nullcontext():
        found = diarizer(audio, None, None, None, lambda _stage, _fraction: None)
    wall = time.monotonic() - started
    stop.set()
    return {
        "minutes": minutes, "release_every_5s": release, "wall_s": round(wall, 1), "anon_before_mb": before,
        "anon_peak_mb": peak[0], "anon_after_mb": rss_anon_mb(), "speakers": len(found.speakers),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, nargs="+", default=[30, 60])
    parser.add_argument("--primitive-cache", type=int, nargs="+", help="oneDNN cache sizes to compare")
    parser.add_argument("--one", nargs=3, metavar=("MINUTES", "RELEASE", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child process: one measurement, printed as JSON
        minutes, release, workdir = args.one
        print(json.dumps(measure(float(minutes), release == "1", Path(workdir))), flush=True)
        return
    workdir = RESULTS / "diarizer_memory_audio"
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    modes: list[tuple[bool, int | None]] = (
        [(True, size) for size in args.primitive_cache] if args.primitive_cache else [(False, None), (True, None)]
    )
    for minutes in args.minutes:
        for release, cache in modes:
            env = dict(os.environ)
            if cache is not None:
                env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = str(cache)
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(minutes), "1" if release else "0", str(workdir)],
                capture_output=True, text=True, check=True, env=env,
            ).stdout  # fmt: skip
            row = {**json.loads(out.strip().splitlines()[-1]), "primitive_cache": cache or "default"}
            rows.append(row)
            print(json.dumps(row), flush=True)
    (RESULTS / f"diarizer_memory_{int(time.time())}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
