"""How the Whisper alignment groups its windows into calls (pipeline/align.py window_batches).

The model is a fake: only its device is read, and the grouping needs no weights. That the
grouping gives the words and timings of one call is tested with the real model in
tests/integration/test_pipeline.py."""

from __future__ import annotations

import itertools
import random
from types import SimpleNamespace
from typing import Any

from whisperx_api.pipeline.align import ALIGN_BATCH, CPU_ALIGN_BATCH, CPU_ALIGN_TOKENS, window_batches


def fake_model(device: str) -> Any:
    return SimpleNamespace(model=SimpleNamespace(device=device))


def batches(device: str, counts: list[int]) -> list[list[int]]:
    return [list(batch) for batch in window_batches(fake_model(device), counts)]


def test_on_a_cpu_two_windows_per_call_while_their_padded_tokens_fit() -> None:
    assert batches("cpu", [100] * 5) == [[0, 1], [2, 3], [4]]
    assert batches("cpu", [112] * 2) == [[0, 1]]  # 2 x 112 = 224
    assert batches("cpu", [113] * 2) == [[0], [1]]


def test_a_long_text_goes_alone_and_does_not_pad_its_neighbours() -> None:
    # the one-hour piece's peak: a 292-token text in a batch of ~100-token texts
    assert batches("cpu", [79, 292, 107, 100, 90]) == [[0], [1], [2, 3], [4]]
    assert batches("cpu", [500, 10]) == [[0], [1]]  # longer than the cap: alone, never dropped


def test_a_gpu_batches_eight_windows_whatever_their_length() -> None:
    assert batches("cuda", [292] * 9) == [list(range(ALIGN_BATCH)), [8]]


def test_no_windows_no_calls() -> None:
    assert batches("cpu", []) == [] and batches("cuda", []) == []


def test_every_window_once_in_order_within_both_caps() -> None:
    rng = random.Random(16)
    for _ in range(500):
        counts = [rng.choice([rng.randint(1, 130), rng.randint(130, 448)]) for _ in range(rng.randint(1, 30))]
        found = batches("cpu", counts)
        assert [i for batch in found for i in batch] == list(range(len(counts)))
        for batch in found:
            assert len(batch) <= CPU_ALIGN_BATCH
            assert len(batch) == 1 or len(batch) * max(counts[i] for i in batch) <= CPU_ALIGN_TOKENS
        # greedy: each batch could not take the next window
        for batch, after in itertools.pairwise(found):
            grown = [*batch, after[0]]
            assert len(grown) > CPU_ALIGN_BATCH or len(grown) * max(counts[i] for i in grown) > CPU_ALIGN_TOKENS
