"""When the inference process is worth replacing: its rest grew, not its models."""

from __future__ import annotations

from whisperx_api.pipeline.rest_watch import RestWatch

MB = 2**20


def test_growth_counts_from_the_lowest_rest_with_the_same_models() -> None:
    watch = RestWatch(64 * MB)
    assert not watch.grown(750 * MB, loads=4)  # the first rest with these models: the baseline
    assert not watch.grown(740 * MB, loads=4)  # lower: the new lowest
    assert not watch.grown(803 * MB, loads=4)  # 63 above it
    assert watch.grown(804 * MB, loads=4) and watch.lowest == 740 * MB
    assert watch.grown(872 * MB, loads=4)  # it stays grown until it is replaced


def test_a_model_load_is_not_growth() -> None:
    watch = RestWatch(64 * MB)
    watch.grown(500 * MB, loads=1)
    assert not watch.grown(1_900 * MB, loads=2)  # large-v3 came in
    assert not watch.grown(1_950 * MB, loads=2)
    assert watch.grown(1_964 * MB, loads=2)
    # an unloaded model lowers the rest; the model loaded again starts a new count
    assert not watch.grown(600 * MB, loads=2) and watch.lowest == 600 * MB
    assert not watch.grown(1_964 * MB, loads=3)


def test_a_limit_of_zero_never_replaces() -> None:
    watch = RestWatch(0)
    watch.grown(500 * MB, loads=1)
    assert not watch.grown(5_000 * MB, loads=1)
