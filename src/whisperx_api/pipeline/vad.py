"""Voice activity detection: whisperx's bundled pyannote segmentation model, or Silero (ONNX, offline)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from whisperx.diarize import Segment as SegmentX
from whisperx.vads.vad import Vad

from whisperx_api.pipeline.audio import SAMPLE_RATE


@dataclass(frozen=True)
class Region:
    start: float
    end: float


class PyannoteVad:
    """whisperx's segmentation model from its own wheel (no hub)."""

    name = "pyannote"

    def __init__(self, device: str) -> None:
        from whisperx.vads.pyannote import load_vad_model

        self._pipeline = load_vad_model(torch.device(device))

    def regions(self, audio: np.ndarray, onset: float, offset: float, max_duration: float) -> list[Region]:
        from whisperx.vads.pyannote import Binarize

        scores = self._pipeline({"waveform": torch.from_numpy(audio).unsqueeze(0), "sample_rate": SAMPLE_RATE})
        timeline = Binarize(max_duration=max_duration, onset=onset, offset=offset)(scores).get_timeline()
        return [Region(float(s.start), float(s.end)) for s in timeline]


class SileroVad:
    """Silero from the silero-vad package. whisperx's own Silero path calls torch.hub (fails offline)."""

    name = "silero"

    def __init__(self) -> None:
        threads = torch.get_num_threads()
        from silero_vad import get_speech_timestamps, load_silero_vad

        self._model = load_silero_vad(onnx=True)
        self._timestamps = get_speech_timestamps
        torch.set_num_threads(threads)  # importing silero_vad sets it to 1

    def regions(self, audio: np.ndarray, onset: float, offset: float, max_duration: float) -> list[Region]:
        stamps = self._timestamps(
            torch.from_numpy(audio),
            self._model,
            threshold=onset,
            neg_threshold=min(offset, onset - 0.01),
            sampling_rate=SAMPLE_RATE,
            max_speech_duration_s=max_duration,
            return_seconds=False,
        )
        return [Region(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


VadModel = PyannoteVad | SileroVad


def merge_regions(regions: list[Region], chunk_size: float, onset: float, offset: float) -> list[Region]:
    """whisperx's merge: pack speech regions into windows of at most chunk_size seconds."""
    if not regions:
        return []
    merged = Vad.merge_chunks([SegmentX(r.start, r.end, "UNKNOWN") for r in regions], chunk_size, onset, offset)
    return [Region(float(m["start"]), float(m["end"])) for m in merged]
