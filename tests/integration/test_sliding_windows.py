"""pipeline/sliding.py against pyannote.audio's own Inference, with the real models on the real
call: the VAD's scores aggregated batch by batch and the diarizer's windows written batch by
batch are what pyannote gives, on audio that ends on a step and on audio that needs the padded
last window, or is shorter than one window."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from tests.speech_corpus import real_call

pytestmark = pytest.mark.models

SAMPLE_RATE = 16_000


def _waveform(seconds: float) -> torch.Tensor:
    """The call's last `seconds` (it ends in speech; it starts in silence)."""
    audio = soundfile.read(real_call().path, dtype="float32")[0]
    return torch.from_numpy(audio[-round(seconds * SAMPLE_RATE) :].copy()).unsqueeze(0)


def _frames(feature) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    window = feature.sliding_window
    return window.start, window.duration, window.step


@pytest.fixture(scope="module")
def vad_inference():  # type: ignore[no-untyped-def]
    from whisperx_api.pipeline.vad import PyannoteVad

    return PyannoteVad("cpu").inference


@pytest.fixture(scope="module")
def diarizer_inference():  # type: ignore[no-untyped-def]
    from whisperx_api.pipeline.diarization.segmentation import SegmentationDiarizer

    return SegmentationDiarizer("cpu").segmentation


# 25.5 s: ends on a step of the VAD's windows (5 s, 0.5 s apart); 23.77 s: a padded last window
# for both models; 3.2 s: shorter than either model's window
@pytest.mark.parametrize("seconds", [25.5, 23.77, 3.2])
def test_vad_scores_aggregated_batch_by_batch_are_pyannotes(vad_inference, seconds: float) -> None:  # type: ignore[no-untyped-def]
    from whisperx_api.pipeline.sliding import aggregated, window_count

    waveform = _waveform(seconds)
    expected = vad_inference({"waveform": waveform, "sample_rate": SAMPLE_RATE})
    done: list[tuple[int, int]] = []

    found = aggregated(vad_inference, waveform, SAMPLE_RATE, lambda d, t: done.append((d, t)))

    assert _frames(found) == _frames(expected)
    assert found.data.shape == expected.data.shape and found.data.dtype == expected.data.dtype
    np.testing.assert_array_equal(found.data, expected.data)
    assert 0.0 < float(found.data.max()) <= 1.0  # speech was found: the comparison is not of zeros
    total = window_count(vad_inference, waveform.shape[1], SAMPLE_RATE)
    assert done[-1] == (total, total) and [d for d, _ in done] == sorted(d for d, _ in done)


@pytest.mark.parametrize("seconds", [30.0, 23.77, 3.2])
def test_diarizer_windows_written_batch_by_batch_are_pyannotes(diarizer_inference, seconds: float) -> None:  # type: ignore[no-untyped-def]
    from whisperx_api.pipeline.sliding import stacked

    waveform = _waveform(seconds)
    expected = diarizer_inference({"waveform": waveform, "sample_rate": SAMPLE_RATE})

    found = stacked(diarizer_inference, waveform, SAMPLE_RATE, lambda out: out > 0.5, np.uint8)

    assert _frames(found) == _frames(expected)
    assert found.data.dtype == np.uint8 and found.data.shape == expected.data.shape
    np.testing.assert_array_equal(found.data, (expected.data > 0.5).astype(np.uint8))
    assert found.data.any()
