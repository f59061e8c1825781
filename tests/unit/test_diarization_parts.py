"""The offline diarizer's own parts on synthetic data (no models): utterance units, spectral
clustering with the eigengap, speaker changes."""

from __future__ import annotations

import numpy as np

from whisperx_api.pipeline.diarization.clustering import first_clear_gap, spectral_labels
from whisperx_api.pipeline.diarization.segmentation import Stretch, Unit, group_stretches, split_units
from whisperx_api.pipeline.diarization.turns import SpeakerTurn, speaker_changes


def test_each_stretch_of_a_local_speaker_is_a_unit() -> None:
    windows = np.zeros((1, 100, 3), dtype=np.float32)
    windows[0, 10:30, 0] = 1  # local speaker 0 talks twice, with a pause of 20 frames
    windows[0, 50:70, 0] = 1
    windows[0, 31:33, 1] = 1
    windows[0, 34:36, 1] = 1  # local speaker 1: a gap of 1 frame is not a pause
    units = split_units(windows)
    assert units.shape == (1, 100, 3)
    spans = sorted((int(np.flatnonzero(units[0, :, k])[0]), int(np.flatnonzero(units[0, :, k])[-1])) for k in range(3))
    assert spans == [(10, 29), (31, 35), (50, 69)]


def test_one_utterance_seen_from_several_windows_is_one_stretch() -> None:
    units = [
        Unit(0, 0, 2.0, 4.0, cut=False),
        Unit(1, 1, 2.05, 3.98, cut=False),  # the same, cut a frame differently
        Unit(2, 0, 9.9, 10.0, cut=True),  # the edge of a window: a piece of the next one
        Unit(3, 0, 9.9, 12.5, cut=False),
    ]
    stretches = group_stretches(units, window_s=10.0)
    assert [(s.start, s.end, len(s.units)) for s in stretches] == [(2.0, 4.0, 2), (9.9, 12.5, 2)]


def test_stretch_pieces_cover_it() -> None:
    assert Stretch(0.0, 0.3).pieces() == []
    assert Stretch(0.0, 1.2).pieces() == [(0.0, 1.2)]
    pieces = Stretch(0.0, 4.0).pieces()
    assert pieces[0] == (0.0, 1.5) and pieces[-1][1] == 4.0 and all(b - a == 1.5 for a, b in pieces)


def clouds(centres: int, per: int, dim: int = 32, spread: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    means = rng.standard_normal((centres, dim))
    labels = np.repeat(np.arange(centres), per)
    return means[labels] + spread * rng.standard_normal((centres * per, dim)), labels


def test_spectral_clustering_finds_how_many_speakers() -> None:
    for count in (1, 2, 4):
        vectors, truth = clouds(count, 12)
        labels = spectral_labels(vectors, 1, 10, None)
        assert len(set(labels.tolist())) == count
        for k in range(count):  # each true cluster is one found cluster
            assert len(set(labels[truth == k].tolist())) == 1


def test_the_speaker_count_is_the_first_clear_eigengap() -> None:
    # the first eigenvalues of a 3-minute two-voice conversation (334 pieces): the gap at 2
    # (0.028) and a slightly larger one at 20 (0.034), among the small gaps of one voice's turns
    eigenvalues = np.array([0.0, 0.0, 0.028, 0.058, 0.07, 0.079, 0.089, 0.094, 0.094, 0.106, 0.109, 0.12, 0.129,
                            0.131, 0.143, 0.163, 0.177, 0.192, 0.194, 0.199, 0.233])  # fmt: skip
    assert first_clear_gap(eigenvalues) + 1 == 2
    # a later gap clearly larger than the first still counts: a meeting of four voices
    assert first_clear_gap(np.array([0.0, 0.01, 0.123, 0.243, 0.58, 0.624])) + 1 == 4
    assert first_clear_gap(np.array([0.0])) == 0


def test_spectral_clustering_honours_a_given_count() -> None:
    vectors, _ = clouds(4, 10)
    assert len(set(spectral_labels(vectors, 1, 10, 2).tolist())) == 2
    assert len(set(spectral_labels(vectors, 1, 3, None).tolist())) <= 3


def test_speaker_changes_ignore_slivers() -> None:
    turns = [
        SpeakerTurn(0.0, 2.0, "A"),
        SpeakerTurn(2.0, 2.1, "B"),  # a sliver
        SpeakerTurn(2.1, 4.0, "A"),
        SpeakerTurn(4.3, 6.0, "B"),
        SpeakerTurn(9.0, 10.0, "A"),  # after a long silence: no change point
    ]
    assert speaker_changes(turns) == [(4.0, 4.3)]


def test_many_vectors_are_clustered_through_a_sample(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import whisperx_api.pipeline.diarization.clustering as clustering

    monkeypatch.setattr(clustering, "MAX_CLUSTERED", 40)
    vectors, truth = clouds(3, 50)
    labels = spectral_labels(vectors, 1, 10, None)
    assert len(labels) == 150 and len(set(labels.tolist())) == 3
    for k in range(3):
        assert len(set(labels[truth == k].tolist())) == 1


def test_reconstruction_from_bytes_gives_pyannotes_turns() -> None:
    """The diarizer keeps its windows and units one byte per value and starts a cluster absent
    from a window at 0; pyannote's reconstruction starts it at NaN in float64. Both must give the
    same frames to the same clusters."""
    from pyannote.audio.pipelines.utils.diarization import SpeakerDiarizationMixin as Steps
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    from whisperx_api.pipeline.diarization.segmentation import _reconstruct

    rng = np.random.default_rng(3)
    windows, frames, local = 40, 100, 3
    activity = np.zeros((windows, frames, local), dtype=np.float32)
    for w, s in zip(rng.integers(0, windows, 90), rng.integers(0, local, 90), strict=True):
        first = int(rng.integers(0, frames - 10))
        activity[w, first : first + int(rng.integers(5, 60)), s] = 1
    chunks = SlidingWindow(start=0.0, duration=10.0, step=3.0)
    units = split_units(activity)
    hard = rng.integers(-2, 3, size=(windows, units.shape[2])).astype(np.int8)  # 3 clusters, some units unassigned
    count = Steps.speaker_count(
        SlidingWindowFeature(activity, chunks), SlidingWindow(start=0.0, duration=0.1, step=0.1), (0.0, 0.0)
    )

    ours = _reconstruct(SlidingWindowFeature(units.astype(np.uint8), chunks), hard, count)

    reference = np.full((windows, frames, 3), np.nan)  # pyannote's SpeakerDiarization.reconstruct
    for w in range(windows):
        for k in np.unique(hard[w]):
            if k >= 0:
                reference[w, :, k] = np.max(units[w][:, hard[w] == k], axis=1)
    theirs = Steps.to_diarization(SlidingWindowFeature(reference, chunks), count)
    assert ours.data.sum() > 100 and np.array_equal(ours.data, theirs.data)
