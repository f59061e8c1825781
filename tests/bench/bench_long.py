"""A long recording (default 60 min) through the full pipeline of the running service, with the
server's peak memory (VmHWM of its worker process), to show that long files work in bounded memory.

    uv run python tests/bench/bench_long.py [--minutes 60]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx

from tests.audio import VOICE_A, VOICE_B, concatenate, duration, speak
from tests.support import clear_queue, descendants, free_port, make_settings, settings_env, start_server

RESULTS = Path(__file__).parent / "results"


def peak_rss_mb(pid: int) -> float:
    """Largest VmHWM among the server's processes: granian's supervisor, its web workers and
    their inference processes."""
    peaks = [0.0]
    for process in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError, StopIteration):
            status = Path(f"/proc/{process}/status").read_text().splitlines()
            peaks.append(int(next(line.split()[1] for line in status if line.startswith("VmHWM:"))) / 1024)
    return max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        a = speak(
            "Welcome back to the show. Today we talk about renewable energy in our cities.", root / "a.wav", VOICE_A
        )
        b = speak(
            "Thanks for having me. Solar panels have become much cheaper over ten years.", root / "b.wav", VOICE_B
        )
        block = concatenate([a, b], root / "block.wav")
        clip = concatenate([block] * max(1, round(args.minutes * 60 / duration(block))), root / "long.wav")
        clip_mp3 = root / "long.mp3"
        os.system(f"ffmpeg -nostdin -v error -y -i {clip} -b:a 64k {clip_mp3}")
        audio_s = duration(clip_mp3)
        settings = make_settings(root / "data", f"sqlite:///{root / 'records.db'}")
        port = free_port()
        server = start_server(
            {**settings_env(settings), "LOG_LEVEL": "WARNING"}, root / "s.log", port, worker_ready=True
        )
        try:
            idle_mb = peak_rss_mb(server.proc.pid)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as http:
                started = time.time()
                response = http.post("/speech-to-text", files={"file": (clip_mp3.name, clip_mp3.read_bytes())},
                                     data={"model": "tiny.en", "language": "en"})  # fmt: skip
                identifier = response.json()["identifier"]
                while (task := http.get(f"/task/{identifier}").json())["status"] not in ("completed", "failed"):
                    time.sleep(2)
            assert task["status"] == "completed", task
            elapsed = datetime.fromisoformat(task["metadata"]["end_time"]).timestamp() - started
            result = task["result"]
            row = {
                "audio_s": round(audio_s, 1),
                "upload_mb": round(clip_mp3.stat().st_size / 1e6, 1),
                "wall_s": round(elapsed, 1),
                "rtf": round(elapsed / audio_s, 4),
                "segments": len(result["segments"]),
                "speakers": result["speakers"],
                "timings": result["timings"],
                "peak_rss_mb_before": round(idle_mb),
                "peak_rss_mb": round(peak_rss_mb(server.proc.pid)),
            }
        finally:
            server.stop()
            clear_queue(settings.queue_name)
    print(json.dumps(row))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"long_{int(time.time())}.json").write_text(
        json.dumps({"date": datetime.now(UTC).isoformat(), **row}, indent=2)
    )


if __name__ == "__main__":
    main()
