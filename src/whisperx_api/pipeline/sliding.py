"""pyannote.audio's sliding-window inference (Inference.slide), one batch at a time.

pyannote keeps each batch's output in a list, stacks the list and only then aggregates it. For
the VAD's 5 s windows 0.5 s apart that is 28,800 windows' scores for four hours (~100 MB),
held twice at the stage's end and grown among the freed working sets of the batches: the heap
fragments and the process grows with the recording, as it did with CAM++'s vectors
(campp.embed_batch). Here each batch's output goes where it ends up as soon as it comes: added
into the overlap-add sums (`aggregated`, the VAD) or, converted, into one array made before the
first batch (`stacked`, the diarizer's windows). The windows, the model's passes and the
arithmetic are pyannote's, so are the results (tests/integration/test_sliding_windows.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# (windows done, windows in all) after each batch
WindowsDone = Callable[[int, int], None]


def as_waveform(audio: np.ndarray) -> torch.Tensor:
    """The decoded audio as the (channel, samples) tensor pyannote's models take, sharing its memory."""
    with warnings.catch_warnings():
        # the decoded audio is read-only; torch warns although nothing writes to it
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(audio).unsqueeze(0)


def _window_samples(inference: Any, sample_rate: int) -> tuple[int, int]:
    return inference.model.audio.get_num_samples(inference.duration), round(inference.step * sample_rate)


def _whole_windows(inference: Any, samples: int, sample_rate: int) -> int:
    size, step = _window_samples(inference, sample_rate)
    return (samples - size) // step + 1 if samples >= size else 0


def _padded(inference: Any, samples: int, sample_rate: int) -> bool:
    """Whether the audio does not end on a step, so a last window padded with zeros follows."""
    size, step = _window_samples(inference, sample_rate)
    return samples < size or (samples - size) % step > 0


def window_count(inference: Any, samples: int, sample_rate: int) -> int:
    """How many windows Inference.slide runs over `samples`."""
    return _whole_windows(inference, samples, sample_rate) + int(_padded(inference, samples, sample_rate))


def batches(inference: Any, waveform: torch.Tensor, sample_rate: int) -> Iterator[tuple[int, np.ndarray]]:
    """(the batch's first window, the model's output for the batch) over a (channel, samples)
    waveform: Inference.slide's windows in its batches, the padded last window on its own."""
    size, step = _window_samples(inference, sample_rate)
    samples = waveform.shape[1]
    whole = _whole_windows(inference, samples, sample_rate)
    if whole:
        windows = waveform.unfold(1, size, step).permute(1, 0, 2)  # (window, channel, sample), a view
        for first in range(0, whole, inference.batch_size):
            yield first, _single(inference.infer(windows[first : first + inference.batch_size]))
    if _padded(inference, samples, sample_rate):
        last = waveform[:, whole * step :]
        yield whole, _single(inference.infer(F.pad(last, (0, size - last.shape[1]))[None]))


def _single(output: Any) -> np.ndarray:
    if not isinstance(output, np.ndarray):
        raise TypeError("a model with one output was expected")
    return output


def aggregated(inference: Any, waveform: torch.Tensor, sample_rate: int, done: WindowsDone | None = None) -> Any:
    """Inference.slide's aggregated output (a SlidingWindowFeature of frames): each window's
    scores, through the inference's pre-aggregation hook, are added into the overlap-add sums
    as their batch comes, Hamming-weighted and with the warm-up ends left out, as
    Inference.aggregate does for all windows at the end. Memory: the frames, not the windows."""
    from pyannote.core import Segment, SlidingWindow, SlidingWindowFeature

    samples = waveform.shape[1]
    total = window_count(inference, samples, sample_rate)
    chunks = SlidingWindow(start=0.0, duration=inference.duration, step=inference.step)
    receptive = inference.model.receptive_field
    frames = SlidingWindow(start=chunks.start, duration=receptive.duration, step=receptive.step)
    sums = counts = covered = hamming = warm_up = np.empty(0)
    for first, output in batches(inference, waveform, sample_rate):
        scores = output if inference.pre_aggregation_hook is None else inference.pre_aggregation_hook(output)
        if first == 0:
            sums, counts, covered, hamming, warm_up = _aggregation_arrays(inference, scores.shape, frames, total)
        per_window = scores.shape[1]
        for index, score in enumerate(scores, start=first):
            # as Inference.aggregate: NaN frames count for nothing; float64 products summed in float32
            mask = 1 - np.isnan(score)
            np.nan_to_num(score, copy=False, nan=0.0)
            at = frames.closest_frame(chunks[index].start + 0.5 * frames.duration)
            sums[at : at + per_window] += score * mask * hamming * warm_up
            counts[at : at + per_window] += mask * hamming * warm_up
            covered[at : at + per_window] = np.maximum(covered[at : at + per_window], mask)
        if done is not None:
            done(first + len(scores), total)
    average = sums / np.maximum(counts, 1e-12)
    average[covered == 0.0] = 0.0
    result = SlidingWindowFeature(average, frames)
    if _padded(inference, samples, sample_rate):  # the padding's frames go
        result.data = result.crop(Segment(0.0, samples / sample_rate), mode="loose")
    return result


def _aggregation_arrays(
    inference: Any, shape: tuple[int, ...], frames: Any, total: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The frames' sums, weights and coverage; a window's Hamming and warm-up weights."""
    _, per_window, classes = shape
    end = inference.duration + (total - 1) * inference.step + 0.5 * frames.duration
    count = frames.closest_frame(end) + 1
    warm_up = np.ones((per_window, 1))
    left = round(inference.warm_up[0] / inference.duration * per_window)
    right = round(inference.warm_up[1] / inference.duration * per_window)
    warm_up[:left] = 1e-12
    warm_up[per_window - right :] = 1e-12
    sums, counts, covered = (np.zeros((count, classes), dtype=np.float32) for _ in range(3))
    return sums, counts, covered, np.hamming(per_window).reshape(-1, 1), warm_up


def stacked(
    inference: Any, waveform: torch.Tensor, sample_rate: int, convert: Callable[[np.ndarray], np.ndarray],
    dtype: type[np.generic], done: WindowsDone | None = None,
) -> Any:  # fmt: skip
    """Inference.slide's output without aggregation (a SlidingWindowFeature of windows), each
    batch's output converted by `convert` into one `dtype` array made before the first batch."""
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    total = window_count(inference, waveform.shape[1], sample_rate)
    out = np.empty(0, dtype=dtype)
    for first, output in batches(inference, waveform, sample_rate):
        if first == 0:
            out = np.empty((total, *output.shape[1:]), dtype=dtype)
        out[first : first + len(output)] = convert(output)
        if done is not None:
            done(first + len(output), total)
    return SlidingWindowFeature(out, SlidingWindow(start=0.0, duration=inference.duration, step=inference.step))
