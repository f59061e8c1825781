"""/v1/audio/transcriptions latency vs bare whisperx, same 10 s clip and settings (tiny.en,
int8 CPU, batch 8, pyannote VAD, language en). The difference of medians is the service's
overhead (upload, validation, task rows, response), measured interleaved; also the median and
quartiles of each pair's difference, which the host's drift during a run does not move.

    uv run python tests/bench/bench_openai.py [--runs 10]
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

from openai import OpenAI

from tests.audio import duration, speak
from tests.support import clear_queue, free_port, make_settings, settings_env, start_server

RESULTS = Path(__file__).parent / "results"
TEXT = (
    "Please remember to bring your umbrella tomorrow morning. Scientists discovered a new species of frog "
    "in the forest, and the museum will show it next week."
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    import whisperx

    from whisperx_api.pipeline.models import resolve_whisper_model

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = speak(TEXT, root / "clip.wav")
        audio_s = duration(clip)
        settings = make_settings(root / "data", f"sqlite:///{root / 'records.db'}", whisper_model="tiny.en")
        model = whisperx.load_model(
            str(resolve_whisper_model("tiny.en", settings.resolved_models_dir)), "cpu", compute_type="int8",
            language="en", vad_method="pyannote",
        )  # fmt: skip
        port = free_port()
        server = start_server(
            {**settings_env(settings), "LOG_LEVEL": "WARNING"}, root / "server.log", port, worker_ready=True
        )
        client = OpenAI(api_key="unused", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout=120)
        data = clip.read_bytes()

        def bare() -> float:
            started = time.perf_counter()
            model.transcribe(whisperx.load_audio(str(clip)), batch_size=8, language="en")
            return time.perf_counter() - started

        def service() -> float:
            started = time.perf_counter()
            client.audio.transcriptions.create(model="whisper-1", file=("clip.wav", data), language="en")
            return time.perf_counter() - started

        try:
            bare(), service()  # warm both
            a, b = [], []
            for _ in range(args.runs):
                a.append(bare())
                b.append(service())
        finally:
            server.stop()
            clear_queue(settings.queue_name)
    # each service run minus the bare run just before it: the host's drift between the two
    # halves of a run cancels, which the difference of the two medians does not
    paired = statistics.quantiles([(y - x) * 1000 for x, y in zip(a, b, strict=True)], n=4)
    row = {
        "audio_s": round(audio_s, 2),
        "bare_whisperx_median_ms": round(statistics.median(a) * 1000, 1),
        "service_median_ms": round(statistics.median(b) * 1000, 1),
        "overhead_ms": round((statistics.median(b) - statistics.median(a)) * 1000, 1),
        "overhead_paired_median_ms": round(paired[1], 1),
        "overhead_paired_quartiles_ms": [round(paired[0], 1), round(paired[2], 1)],
        "upload_bytes": len(data),
    }
    print(json.dumps(row))
    RESULTS.mkdir(exist_ok=True)
    report = {"date": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(), "runs": args.runs, **row}
    (RESULTS / f"openai_{int(time.time())}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
