"""Service overhead vs bare whisperx, and per-stage real-time factors.

For the same audio and settings (tiny.en, int8 CPU, batch 8, pyannote VAD, language en):
  (a) whisperx in this process, model already loaded: load_audio + transcribe;
  (b) the running service end to end: upload start to the task's recorded completion time, via
      /service/transcribe (polled every 0.5 s so the polling does not load the server).
Then the full pipeline (/speech-to-text: VAD, transcribe, align, diarize) reports each stage's
real-time factor (seconds of work per second of audio).

    uv run python tests/bench/bench_pipeline.py [--minutes 10] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx

from tests.audio import VOICE_A, VOICE_B, concatenate, duration, speak
from tests.support import clear_queue, free_port, make_settings, settings_env, start_server

RESULTS = Path(__file__).parent / "results"
LINES = [
    ("A", "Welcome back to the show. Today we talk about renewable energy and the future of our cities."),
    ("B", "Thanks for having me. Solar panels have become much cheaper over the last ten years."),
    ("A", "What does that mean for people who rent their homes rather than own them?"),
    ("B", "Community projects let tenants buy a share of a larger installation nearby."),
]


def make_clip(root: Path, seconds: float) -> Path:
    parts = [speak(text, root / f"l{i}.wav", VOICE_A if who == "A" else VOICE_B) for i, (who, text) in enumerate(LINES)]
    block = concatenate(parts, root / "block.wav")
    repeats = max(1, round(seconds / duration(block)))
    return concatenate([block] * repeats, root / f"clip_{int(seconds)}.wav")


def bare_whisperx(model: object, clip: Path) -> float:
    import whisperx

    started = time.perf_counter()
    audio = whisperx.load_audio(str(clip))
    model.transcribe(audio, batch_size=8, language="en")  # type: ignore[attr-defined]
    return time.perf_counter() - started


def through_service(base: str, clip: Path, endpoint: str, fields: dict[str, str]) -> tuple[float, dict]:  # type: ignore[type-arg]
    with httpx.Client(base_url=base, timeout=600) as http:
        started = time.time()
        response = http.post(endpoint, files={"file": (clip.name, clip.read_bytes())}, data=fields)
        response.raise_for_status()
        identifier = response.json()["identifier"]
        while True:
            task = http.get(f"/task/{identifier}").json()
            if task["status"] in ("completed", "failed"):
                assert task["status"] == "completed", task
                # upload start to the moment the task row says completed (same clock): the poll
                # interval neither adds latency nor loads the server being measured
                finished = datetime.fromisoformat(task["metadata"]["end_time"]).timestamp()
                return finished - started, task["result"]
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import whisperx

    from whisperx_api.pipeline.models import resolve_whisper_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clips = [make_clip(root, 60), make_clip(root, args.minutes * 60)]
        settings = make_settings(root / "data", f"sqlite:///{root / 'records.db'}")
        model_path = resolve_whisper_model("tiny.en", settings.resolved_models_dir)
        model = whisperx.load_model(str(model_path), "cpu", compute_type="int8", language="en", vad_method="pyannote")
        port = free_port()
        server = start_server(
            {**settings_env(settings), "LOG_LEVEL": "WARNING"}, root / "server.log", port, worker_ready=True
        )
        base = f"http://127.0.0.1:{port}"
        fields = {"model": "tiny.en", "language": "en", "batch_size": "8", "vad_method": "pyannote"}
        try:
            through_service(base, clips[0], "/service/transcribe", fields)  # warm the service's models
            bare_whisperx(model, clips[0])
            for clip in clips:
                audio_s = duration(clip)
                bare, service = [], []
                for _ in range(args.repeats):  # interleaved, so drift hits both sides alike
                    bare.append(bare_whisperx(model, clip))
                    service.append(through_service(base, clip, "/service/transcribe", fields)[0])
                a, b = statistics.median(bare), statistics.median(service)
                _, full = through_service(base, clip, "/speech-to-text", {**fields, "model": "tiny.en"})
                stages = {k: round(v / audio_s, 4) for k, v in full["timings"].items()}
                row = {"audio_s": round(audio_s, 1), "bare_whisperx_s": round(a, 2), "service_s": round(b, 2),
                       "ratio": round(b / a, 3), "full_pipeline_rtf_by_stage": stages}  # fmt: skip
                rows.append(row)
                print(f"{audio_s:7.1f}s audio: bare whisperx {a:6.2f}s  service {b:6.2f}s  ratio {b / a:5.3f}  "
                      f"full-pipeline RTF by stage {stages}", flush=True)  # fmt: skip
        finally:
            server.stop()
            clear_queue(settings.queue_name)
    RESULTS.mkdir(exist_ok=True)
    report = {"date": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(), "model": "tiny.en int8 cpu", "rows": rows}
    (RESULTS / f"pipeline_{int(time.time())}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
