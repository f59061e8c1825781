"""Voice activity detection: whisperx's bundled pyannote segmentation model, or Silero (ONNX, offline)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from whisperx.diarize import Segment as SegmentX
from whisperx.vads.vad import Vad

from whisperx_api.pipeline.audio import SAMPLE_RATE
from whisperx_api.pipeline.options import VadOptions
from whisperx_api.pipeline.progress import ProgressCallback
from whisperx_api.pipeline.sliding import aggregated, as_waveform


@dataclass(frozen=True)
class Region:
    start: float
    end: float


# 5 s windows per forward pass. whisperx's 32 held 460 MB of activations at the peak of each
# batch; 8 hold 90 MB and took 7 % longer (10 minutes of speech: 17.9 s vs 16.7 s, this machine)
VAD_BATCH = 8


class PyannoteVad:
    """whisperx's segmentation model from its own wheel (no hub), run as whisperx's
    VoiceActivitySegmentation runs it (5 s windows 0.5 s apart, each frame the most active of
    the model's speakers, overlap-added), with the windows' scores summed batch by batch
    (sliding.py) rather than held for the whole recording."""

    name = "pyannote"

    def __init__(self, device: str) -> None:
        from pathlib import Path

        import whisperx
        from pyannote.audio import Inference, Model

        weights = Path(whisperx.__file__).parent / "assets" / "pytorch_model.bin"
        model = Model.from_pretrained(str(weights))
        if model is None:
            raise RuntimeError("whisperx's VAD weights could not be loaded")
        self.inference = Inference(
            model, device=torch.device(device), batch_size=VAD_BATCH, pre_aggregation_hook=_most_active
        )

    def regions(
        self, audio: np.ndarray, vad: VadOptions, max_duration: float, progress: ProgressCallback | None = None
    ) -> list[Region]:
        from whisperx.vads.pyannote import Binarize

        windows_done = None if progress is None else lambda windows, total: progress("vad", windows / total)
        scores = aggregated(self.inference, as_waveform(audio), SAMPLE_RATE, windows_done)
        binarize = Binarize(max_duration=max_duration, onset=vad.vad_onset, offset=vad.vad_offset)
        found = [Region(float(s.start), float(s.end)) for s in binarize(scores).get_timeline()]
        return shaped(found, vad.speech_pad_s or 0.0, vad.min_silence_s or 0.0, max_duration)


def _most_active(scores: np.ndarray) -> np.ndarray:
    """pyannote's VoiceActivityDetection hook: speech where any of the model's speakers speaks."""
    return np.max(scores, axis=-1, keepdims=True)


def shaped(regions: list[Region], pad: float, min_silence: float, max_duration: float) -> list[Region]:
    """Regions with `pad` seconds of the audio before each (not reaching into the one before)
    and pauses shorter than `min_silence` bridged, none longer than `max_duration`: what
    whisperx's Binarize refuses to do together with its max_duration split."""
    result: list[Region] = []
    for region in regions:
        start = max(0.0, region.start - pad, result[-1].end if result else 0.0)
        if result and region.start - result[-1].end < min_silence and region.end - result[-1].start <= max_duration:
            result[-1] = Region(result[-1].start, region.end)
        else:
            result.append(Region(start, region.end))
    return result


class SileroVad:
    """Silero from the silero-vad package. whisperx's own Silero path calls torch.hub (fails offline)."""

    name = "silero"

    def __init__(self) -> None:
        threads = torch.get_num_threads()
        from silero_vad import get_speech_timestamps, load_silero_vad

        self._model = load_silero_vad(onnx=True)
        self._timestamps = get_speech_timestamps
        torch.set_num_threads(threads)  # importing silero_vad sets it to 1

    def regions(
        self, audio: np.ndarray, vad: VadOptions, max_duration: float, progress: ProgressCallback | None = None
    ) -> list[Region]:
        padding = {} if vad.speech_pad_s is None else {"speech_pad_ms": round(vad.speech_pad_s * 1000)}
        if vad.min_silence_s is not None:
            padding["min_silence_duration_ms"] = round(vad.min_silence_s * 1000)
        stamps = self._timestamps(
            torch.from_numpy(audio),
            self._model,
            threshold=vad.vad_onset,
            neg_threshold=min(vad.vad_offset, vad.vad_onset - 0.01),
            sampling_rate=SAMPLE_RATE,
            max_speech_duration_s=max_duration,
            return_seconds=False,
            progress_tracking_callback=None if progress is None else lambda percent: progress("vad", percent / 100),
            **padding,
        )
        return [Region(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


VadModel = PyannoteVad | SileroVad


def merge_regions(regions: list[Region], chunk_size: float, onset: float, offset: float) -> list[Region]:
    """whisperx's merge: pack speech regions into windows of at most chunk_size seconds."""
    if not regions:
        return []
    merged = Vad.merge_chunks([SegmentX(r.start, r.end, "UNKNOWN") for r in regions], chunk_size, onset, offset)
    return [Region(float(m["start"]), float(m["end"])) for m in merged]
