"""Vector checks, the immutable search index and label assignment (pure functions, no I/O)."""

from __future__ import annotations

import uuid

import msgspec
import numpy as np
import pytest

from whisperx_api.pipeline.results import Transcript
from whisperx_api.speaker_library.naming import assign, relabel
from whisperx_api.speaker_library.vectors import (
    Entry,
    Hit,
    VectorError,
    VectorIndex,
    check_dimension,
    from_bytes,
    prepare,
    to_bytes,
)


def entry(label: str, task: uuid.UUID | None = None) -> Entry:
    return Entry(uuid.uuid4(), label, task)


def index_of(rows: list[tuple[Entry, list[float]]]) -> VectorIndex:
    dim = len(rows[0][1])
    return VectorIndex.empty(dim).with_added([e for e, _ in rows], [prepare(v) for _, v in rows])


def test_prepare_normalises_to_float32_and_refuses_what_cannot_be_compared() -> None:
    vector = prepare([3, 4])
    assert vector.dtype == np.float32 and np.allclose(vector, [0.6, 0.8])
    assert np.array_equal(from_bytes(to_bytes(vector)), vector) and len(to_bytes(vector)) == 8
    for bad, words in (([], "non-empty"), ([0.0, 0.0], "zeros"), ([1.0, float("nan")], "NaN"),
                       ([float("inf"), 1.0], "infinite"), ([0.1] * 5000, "at most")):  # fmt: skip
        with pytest.raises(VectorError, match=words):
            prepare(bad)


def test_dimension_is_checked_against_known_models_and_stored_vectors() -> None:
    check_dimension("resemblyzer-ge2e-256", 256)
    with pytest.raises(VectorError) as known:
        check_dimension("resemblyzer-ge2e-256", 512)
    assert known.value.code == "EMBEDDING_DIMENSION_MISMATCH"
    check_dimension("somebody-else", 3)  # nothing stored yet: any dimension starts the model
    with pytest.raises(VectorError):
        check_dimension("somebody-else", 3, stored=4)


def test_search_orders_thresholds_limits_and_excludes_a_task() -> None:
    task = uuid.uuid4()
    a, b, c, d = entry("a"), entry("b"), entry("c", task), entry("d")
    index = index_of([(a, [1, 0, 0]), (b, [1, 1, 0]), (c, [1, 0.1, 0]), (d, [0, 0, 1])])
    query = prepare([1, 0, 0])
    hits = index.search(query, limit=10, threshold=0.0)
    assert [h.entry.label for h in hits] == ["a", "c", "b", "d"]
    assert hits[0].similarity == pytest.approx(1.0) and hits[2].similarity == pytest.approx(np.sqrt(0.5), abs=1e-6)
    assert [h.entry.label for h in index.search(query, limit=2, threshold=0.0)] == ["a", "c"]
    assert [h.entry.label for h in index.search(query, limit=10, threshold=0.8)] == ["a", "c"]
    assert [h.entry.label for h in index.search(query, limit=10, threshold=0.0, exclude_task=task)] == ["a", "b", "d"]
    assert VectorIndex.empty(3).search(query, 5, 0.0) == []


def test_best_by_label_uses_the_closest_sample_and_counts_samples() -> None:
    rows = [(entry("carol"), [1, 0, 0]), (entry("carol"), [0, 1, 0]), (entry("dave"), [0.7, 0.7, 0])]
    index = index_of(rows)
    ranked = index.best_by_label(prepare([0.1, 1, 0]), threshold=0.0)
    assert [(hit.entry.label, samples) for hit, samples in ranked] == [("carol", 2), ("dave", 1)]
    assert ranked[0][0].entry.id == rows[1][0].id
    assert index.best_by_label(prepare([0, 0, 1]), threshold=0.5) == []


def test_index_snapshots_are_immutable_and_patches_idempotent() -> None:
    a, b = entry("a"), entry("b")
    first = index_of([(a, [1, 0])])
    second = first.with_added([b], [prepare([0, 1])])
    assert len(first) == 1 and len(second) == 2  # the old snapshot is untouched
    assert second.with_added([b], [prepare([0, 1])]) is second  # adding twice changes nothing
    renamed = second.relabelled(b.id, "bee", None)
    assert [e.label for e in renamed.entries] == ["a", "bee"] and second.entries[1].label == "b"
    smaller = renamed.without({a.id})
    assert [e.label for e in smaller.entries] == ["bee"] and smaller.matrix.shape == (1, 2)
    assert smaller.without({a.id}) is smaller
    rebuilt = VectorIndex.from_rows(2, [(a.id, "a", None, to_bytes(prepare([1, 0])))])
    assert rebuilt.search(prepare([1, 0]), 1, 0.9)[0].entry.id == a.id


def test_assign_gives_each_label_to_one_speaker_best_first() -> None:
    alice, bob = entry("alice"), entry("bob")
    candidates = {
        # both diarized speakers resemble alice most; SPEAKER_01 more so, SPEAKER_00 gets bob
        "SPEAKER_00": [Hit(alice, 0.80), Hit(bob, 0.75)],
        "SPEAKER_01": [Hit(alice, 0.90), Hit(bob, 0.60)],
        "SPEAKER_02": [Hit(alice, 0.50)],
    }
    chosen = assign(candidates, threshold=0.7)
    assert {raw: hit.entry.label for raw, hit in chosen.items()} == {"SPEAKER_01": "alice", "SPEAKER_00": "bob"}


def test_relabel_rewrites_segments_and_words_and_keeps_the_raw_label() -> None:
    result = msgspec.convert(
        {
            "speakers": ["SPEAKER_00", "SPEAKER_01"],
            "speaker_identification": {"SPEAKER_00": {"status": "identified", "similarity": 0.91}},
            "segments": [
                {"speaker": "SPEAKER_00", "text": "hi", "words": [{"word": "hi", "speaker": "SPEAKER_00"}]},
                {"speaker": "SPEAKER_01", "text": "yo", "words": [{"word": "yo", "speaker": "SPEAKER_01"}]},
            ],
        },
        Transcript,
    )
    relabel(result, {"SPEAKER_00": "Alice"})
    first, second = result.segments
    assert first.speaker == "Alice" and first.speaker_raw == "SPEAKER_00" and first.speaker_similarity == 0.91
    assert first.words[0].speaker == "Alice" and second.speaker == "SPEAKER_01" and second.speaker_raw is None
    assert result.speakers == ["Alice", "SPEAKER_01"]
    assert [w.speaker for w in result.word_segments] == ["Alice", "SPEAKER_01"]
