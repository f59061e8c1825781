"""Word timings: wav2vec2 (whisperx.align) when a model is at hand, else Whisper's own cross-attention.

The Whisper path force-aligns the given text with CTranslate2 (faster-whisper's find_alignment)
in windows of at most 30 s, so every language Whisper knows gets word timings with no extra
model, and every word of the text comes back.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import merge_punctuations
from whisperx.asr import WhisperModel

from whisperx_api.pipeline import word_timing
from whisperx_api.pipeline.audio import SAMPLE_RATE
from whisperx_api.pipeline.progress import ProgressCallback

logger = logging.getLogger(__name__)

WINDOW_S = 30.0
HOP = 160  # samples per mel frame
MAX_PAD_S = 0.2
ALIGN_BATCH = 8  # windows per encoder and alignment call on a GPU
# On a CPU, two: what one call holds (the windows' encoder output, the decoder's state and
# cross-attention over each window's 1,500 frames) grows with the batch, and the batch of 8 was
# the four-hour file's peak (a spike in the alignment's first minutes). The pipeline on 15
# minutes in one process (tiny.en, int8, 2 cores, 2026-12-04): the alignment's peak 304-309 MB
# above its start in eights, 179-188 in fours, 6.1-8.4 against 6.7-7.2 s, the same words. Twos
# with half the tokens below, through the service (base, 2026-12-06, a host whose alignment peaked
# ~190 MB higher than the day's first): 30 minutes 1,514 -> 1,386 MB for all processes (the peak
# moved to the diarizer), 33.8 -> 32.7 s, 517,000 -> 196,000 faults; 2 minutes 1,445-1,459 ->
# 1,349-1,360 MB, 2.49-2.53 against 2.45-2.59 s; the same words, WER and DER.
CPU_ALIGN_BATCH = 2
# ... and at most half as many tokens as Whisper's longest text (its decoder's 448 positions), once
# CTranslate2 has padded each text to the batch's longest: a call's peak follows windows times
# longest text. One call in one process (base, int8, 2 cores, 2026-12-06), peak above its start:
# 4 x 100 tokens +265 MB, 4 x 112 +253, 1 x 440 +226, 1 x 292 +144, 2 x 292 +321, 4 x 292 +633
# (the one-hour piece's alignment peak, a 292-token text beside three of ~100).
CPU_ALIGN_TOKENS = 224
SENTENCE_END = re.compile(r"[.!?。！？]['\"”)\]]*$")
PREPEND = "\"'“¿([{-"
APPEND = "\"'.。,，!！?？:：”)]}、"


def alignment_windows(segments: list[dict[str, Any]], duration: float) -> list[tuple[float, float]]:
    """Each segment's audio window, padded by less than half the gap to its neighbours."""
    spans = []
    for i, seg in enumerate(segments):
        before = seg["start"] - (segments[i - 1]["end"] if i else 0.0)
        after = (segments[i + 1]["start"] if i + 1 < len(segments) else duration) - seg["end"]
        start = max(0.0, seg["start"] - min(MAX_PAD_S, max(0.0, before) / 2))
        end = min(duration, seg["end"] + min(MAX_PAD_S, max(0.0, after) / 2))
        spans.append((start, min(end, start + WINDOW_S)))
    return spans


def window_batches(model: WhisperModel, token_counts: list[int]) -> Iterator[range]:
    """The indices of the windows whose texts have `token_counts` tokens, consecutive, a batch
    per encoder and alignment call: a GPU gains from batching, a CPU pays in memory, so on a CPU
    a batch also holds at most CPU_ALIGN_TOKENS padded tokens (a longer text goes alone)."""
    on_cpu = model.model.device == "cpu"
    step = CPU_ALIGN_BATCH if on_cpu else ALIGN_BATCH
    first, longest = 0, 0
    for i, count in enumerate(token_counts):
        longest = max(longest, count)
        if i > first and (i - first == step or (on_cpu and (i - first + 1) * longest > CPU_ALIGN_TOKENS)):
            yield range(first, i)
            first, longest = i, count
    if token_counts:
        yield range(first, len(token_counts))


def encode_windows(model: WhisperModel, audio: np.ndarray, spans: list[tuple[float, float]]) -> tuple[Any, list[int]]:
    """Whisper's encoder output for each span (padded to 30 s) and the mel frames each covers."""
    features = []
    for start, end in spans:
        a, b = int(start * SAMPLE_RATE), int(end * SAMPLE_RATE)
        window = np.zeros(int(WINDOW_S * SAMPLE_RATE), dtype=np.float32)
        window[: b - a] = audio[a:b]
        features.append(model.feature_extractor(window)[:, : model.feature_extractor.nb_max_frames])
    frames = [max(1, int((end - start) * SAMPLE_RATE) // HOP) for start, end in spans]
    return model.encode(np.stack(features)), frames


class AlignmentCall(NamedTuple):
    windows: range  # the indices of its segments
    encoder_output: Any
    frames: list[int]  # the mel frames each window covers (CTranslate2 takes one per window)
    tokens: list[list[int]]  # each window's text


def alignment_calls(
    model: WhisperModel, tokenizer: Tokenizer, audio: np.ndarray, segments: list[dict[str, Any]],
    spans: list[tuple[float, float]],
) -> Iterator[AlignmentCall]:  # fmt: skip
    """The segments' windows (`spans`) grouped into calls by window_batches, each with Whisper's
    encoder output for its windows and its texts' tokens: what the alignment and the logprobs
    hand to CTranslate2."""
    texts = [tokenizer.encode(" " + s["text"].strip()) for s in segments]
    for batch in window_batches(model, [len(t) for t in texts]):
        encoder_output, frames = encode_windows(model, audio, [spans[i] for i in batch])
        yield AlignmentCall(batch, encoder_output, frames, [texts[i] for i in batch])


def align_with_whisper(
    model: WhisperModel,
    audio: np.ndarray,
    segments: list[dict[str, Any]],
    language: str,
    progress: ProgressCallback,
) -> list[dict[str, Any]]:
    """Force-align each segment's text; returns segments split into sentences, with words."""
    segments = [s for s in segments if s.get("text", "").strip()]
    if not segments:
        return []
    duration = len(audio) / SAMPLE_RATE
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language)
    spans = alignment_windows(segments, duration)
    words_per_segment: list[list[dict[str, Any]]] = []
    for call in alignment_calls(model, tokenizer, audio, segments, spans):
        alignments = model.find_alignment(tokenizer, call.tokens, call.encoder_output, call.frames)
        for i, alignment in zip(call.windows, alignments, strict=True):
            merge_punctuations(alignment, PREPEND, APPEND)
            offset = spans[i][0]
            words = [
                {
                    "word": w["word"].strip(),
                    "start": round(offset + float(w["start"]), 3),
                    "end": round(offset + float(w["end"]), 3),
                    "score": round(float(w["probability"]), 3),
                    "tokens": [int(t) for t in w["tokens"]],
                }
                for w in alignment
                if w["word"].strip()
            ]
            word_timing.refine(words, audio, spans[i])
            words_per_segment.append(words)
        progress("aligning", len(words_per_segment) / len(segments))
    return split_sentences(words_per_segment, segments)


# decoder facts of the window a sentence came from (kept for the OpenAI-compatible output)
WINDOW_FACTS = ("avg_logprob", "no_speech_prob", "temperature", "seek")


def split_sentences(
    words_per_segment: list[list[dict[str, Any]]], segments: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for words, segment in zip(words_per_segment, segments, strict=True):
        facts = {key: segment[key] for key in WINDOW_FACTS if key in segment}
        if not words:
            out.append(
                {
                    "start": segment["start"],
                    "end": segment["end"],
                    "text": segment["text"].strip(),
                    "words": [],
                    **facts,
                }
            )
            continue
        current: list[dict[str, Any]] = []
        for word in words:
            current.append(word)
            if SENTENCE_END.search(word["word"]):
                out.append({**_segment_of(current), **facts})
                current = []
        if current:
            out.append({**_segment_of(current), **facts})
    return out


def _segment_of(words: list[dict[str, Any]]) -> dict[str, Any]:
    timed = [w for w in words if "start" in w]
    # the sentence's Whisper tokens, gathered from its words (which then drop them)
    tokens = [t for w in words for t in w.pop("tokens", [])]
    return {
        "start": timed[0]["start"] if timed else None,
        "end": timed[-1]["end"] if timed else None,
        "text": " ".join(w["word"] for w in words),
        "words": words,
        "tokens": tokens,
    }


def wav2vec2_model_name(language: str, requested: str | None) -> str | None:
    from whisperx.alignment import DEFAULT_ALIGN_MODELS_HF, DEFAULT_ALIGN_MODELS_TORCH

    return requested or DEFAULT_ALIGN_MODELS_TORCH.get(language) or DEFAULT_ALIGN_MODELS_HF.get(language)


def wav2vec2_available(model_name: str, model_dir: Path | None = None) -> bool:
    """True only if the weights are already on disk: never start a download to find out."""
    import torch
    import torchaudio

    if model_name in torchaudio.pipelines.__all__:
        bundle = torchaudio.pipelines.__dict__[model_name]
        file_name = Path(bundle._path).name
        hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
        return any((d / file_name).is_file() for d in [hub_dir, *([model_dir] if model_dir else [])])
    if Path(model_name).is_dir():
        return True
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(model_name, "config.json", cache_dir=model_dir), str)


def load_wav2vec2(language: str, model_name: str, device: str, model_dir: Path | None) -> tuple[Any, dict[str, Any]]:
    import whisperx

    return whisperx.load_align_model(
        language, device, model_name=model_name, model_dir=str(model_dir) if model_dir else None, model_cache_only=True
    )


def align_with_wav2vec2(
    model: Any,
    metadata: dict[str, Any],
    audio: np.ndarray,
    segments: list[dict[str, Any]],
    device: str,
    interpolate_method: str,
    return_char_alignments: bool,
    progress: ProgressCallback,
) -> list[dict[str, Any]]:
    import whisperx

    result = whisperx.align(
        segments, model, metadata, audio, device,
        interpolate_method=interpolate_method,
        return_char_alignments=return_char_alignments,
        progress_callback=lambda pct: progress("aligning", pct / 100),
    )  # fmt: skip
    return list(result["segments"])
