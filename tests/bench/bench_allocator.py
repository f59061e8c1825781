"""The inference process's allocator settings against glibc's defaults (memory.tune_allocator):
the whole pipeline on an N-minute two-voice conversation, each stage's wall time, CPU seconds in
user space and in the kernel, and minor page faults. Each run in a fresh process set up as the
inference process is (memory.limit_native_caches, then the settings or not), its models loaded
and warmed on a 30 s clip first; the two alternate, pair after pair, so that a change in the
host's pace falls on both. Faults do not depend on the host's pace; the times do.

    uv run python tests/bench/bench_allocator.py [--minutes 4] [--pairs 3] [--model base]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

RESULTS = Path(__file__).parent / "results"
STAGES = ("vad", "transcribing", "aligning", "diarizing")


def run(clip: Path, warm: Path, model: str, tuned: bool, models: Path) -> dict[str, Any]:
    """One task in this process: each stage's wall, user and kernel seconds and minor faults."""
    from whisperx_api import memory

    memory.limit_native_caches()
    if tuned and not memory.tune_allocator():
        raise SystemExit("glibc's mallopt is not available here")
    from dataclasses import replace

    from whisperx_api.pipeline.engine import SpeechEngine
    from whisperx_api.pipeline.options import EngineConfig, PipelineOptions

    engine = SpeechEngine(EngineConfig(models_dir=models))
    options = PipelineOptions()
    options = replace(options, whisper=replace(options.whisper, model=model))
    engine.run(warm, options, lambda _stage, _fraction: None)  # every model loaded and warm
    marks: list[tuple[str, Any, float]] = []

    def progress(stage: str, _fraction: float) -> None:
        if not marks or marks[-1][0] != stage:
            marks.append((stage, resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()))

    started = time.perf_counter()
    engine.run(clip, options, progress)
    marks.append(("end", resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()))
    stages = {
        stage: {"wall_s": round(t1 - t0, 2), "user_s": round(b.ru_utime - a.ru_utime, 2),
                "sys_s": round(b.ru_stime - a.ru_stime, 2), "minor_faults": b.ru_minflt - a.ru_minflt}
        for (stage, a, t0), (_, b, t1) in itertools.pairwise(marks)
        if stage in STAGES
    }  # fmt: skip
    return {
        "tuned": tuned, "wall_s": round(time.perf_counter() - started, 1), "stages": stages,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=4)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--model", default="base")
    parser.add_argument("--child", nargs=4, metavar=("CLIP", "WARM", "MODE", "MODELS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        clip, warm, mode, models = args.child
        print(json.dumps(run(Path(clip), Path(warm), args.model, mode == "tuned", Path(models))))
        return
    from tests.speech_corpus import espeak_conversation

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip, warm = root / "clip.mp3", root / "warm.mp3"
        espeak_conversation(args.minutes, clip)
        espeak_conversation(0.5, warm, seed=3)
        for pair in range(args.pairs):
            for mode in ("default", "tuned"):
                out = subprocess.run(
                    [sys.executable, __file__, "--model", args.model, "--child", str(clip), str(warm), mode,
                     str(root / "models")],
                    capture_output=True, text=True, timeout=1800, check=True,
                )  # fmt: skip
                row = {"pair": pair, **json.loads(out.stdout.strip().splitlines()[-1])}
                rows.append(row)
                work = row["stages"]
                print(f"pair {pair} {mode:7} {row['wall_s']:6.1f} s  user "
                      f"{sum(s['user_s'] for s in work.values()):5.1f} s  kernel {sum(s['sys_s'] for s in work.values()):5.1f} s"
                      f"  faults {sum(s['minor_faults'] for s in work.values()) / 1e6:4.2f} M  "
                      + "  ".join(f"{k} {v['wall_s']:.1f}" for k, v in work.items()), flush=True)  # fmt: skip
    for tuned in (False, True):
        of = [r for r in rows if r["tuned"] is tuned]
        print(f"{'tuned' if tuned else 'default'}: median {median(r['wall_s'] for r in of):.1f} s")
    RESULTS.mkdir(exist_ok=True)
    out_path = RESULTS / f"allocator_{int(time.time())}.json"
    out_path.write_text(
        json.dumps(
            {"date": datetime.now(UTC).isoformat(), "minutes": args.minutes, "model": args.model, "runs": rows},
            indent=1,
        )
    )
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
