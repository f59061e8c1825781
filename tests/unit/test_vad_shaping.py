"""Padding speech regions and bridging short pauses (OpenAI's chunking_strategy on pyannote's VAD)."""

from __future__ import annotations

from whisperx_api.pipeline.vad import Region, shaped

SPEECH = [Region(1.0, 3.0), Region(3.4, 5.0), Region(7.0, 9.0)]


def test_no_padding_and_no_bridging_leave_the_regions_alone() -> None:
    assert shaped(SPEECH, 0.0, 0.0, 30.0) == SPEECH


def test_padding_reaches_back_but_not_into_the_region_before() -> None:
    assert shaped(SPEECH, 0.3, 0.0, 30.0) == [Region(0.7, 3.0), Region(3.1, 5.0), Region(6.7, 9.0)]
    assert shaped(SPEECH, 0.6, 0.0, 30.0)[1] == Region(3.0, 5.0)
    assert shaped([Region(0.1, 1.0)], 0.3, 0.0, 30.0) == [Region(0.0, 1.0)]


def test_pauses_shorter_than_the_minimum_are_bridged_up_to_the_longest_window() -> None:
    assert shaped(SPEECH, 0.0, 0.5, 30.0) == [Region(1.0, 5.0), Region(7.0, 9.0)]
    assert shaped(SPEECH, 0.0, 2.5, 30.0) == [Region(1.0, 9.0)]
    assert shaped(SPEECH, 0.0, 2.5, 6.0) == [Region(1.0, 5.0), Region(7.0, 9.0)]  # 8 s would be too long
