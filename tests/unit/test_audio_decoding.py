"""Decoded audio maps a file: the samples are ffmpeg's, nothing is left on disk, and a finished
stage's pages leave the process's memory."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.audio import silence
from whisperx_api.pipeline.audio import SAMPLE_RATE, decode_audio, memory_released, release_pages
from whisperx_api.pipeline.errors import AudioProcessingError


def _resident_file_kb() -> int:
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(line.split()[1] for line in status if line.startswith("RssFile:")))


def test_decoded_audio_is_ffmpegs_samples_mapped_from_a_file_that_is_gone(tmp_path: Path) -> None:
    source = tmp_path / "tone.mp3"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=60",
         "-b:a", "64k", str(source)],
        check=True, timeout=60,
    )  # fmt: skip
    piped = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(source), "-f", "f32le", "-ac", "1", "-ar", str(SAMPLE_RATE),
         "-"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    audio = decode_audio(source)
    assert np.array_equal(audio, np.frombuffer(piped, dtype=np.float32))
    assert not audio.flags.writeable
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tone.mp3"]  # the decoded file has no name

    float(audio.sum())  # a stage reads every sample: 3.8 MB of pages
    before = _resident_file_kb()
    release_pages(audio[SAMPLE_RATE:])  # a slice of it, as stages hold
    assert before - _resident_file_kb() > 3000
    assert np.array_equal(audio[:SAMPLE_RATE], np.frombuffer(piped, dtype=np.float32)[:SAMPLE_RATE])  # read again
    release_pages(np.zeros(10, dtype=np.float32))  # not a decoded file: nothing to do


def test_pages_read_while_the_stages_run_leave_the_process_as_they_go(tmp_path: Path) -> None:
    source = tmp_path / "tone.wav"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=60", str(source)],
        check=True, timeout=60,
    )  # fmt: skip
    audio = decode_audio(source)
    expected = np.array(audio[: SAMPLE_RATE * 10])
    with memory_released(audio, every_s=0.05):
        float(audio.sum())  # a stage reads the whole recording
        touched = _resident_file_kb()
        deadline = time.monotonic() + 10
        while touched - _resident_file_kb() < 3000:  # released within a few periods
            assert time.monotonic() < deadline, "the pages stayed"
            time.sleep(0.05)
        assert np.array_equal(audio[: SAMPLE_RATE * 10], expected)  # read again, from the page cache


def test_media_that_decodes_to_nothing_is_refused(tmp_path: Path) -> None:
    empty = silence(tmp_path / "empty.wav", 0.0)
    with pytest.raises(AudioProcessingError):
        decode_audio(empty)
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"not audio at all" * 100)
    with pytest.raises(AudioProcessingError, match="could not decode"):
        decode_audio(broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp3", "empty.wav"]
