"""Probing media whose container does not say how long it is."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.audio import duration, speak
from whisperx_api.pipeline.audio import probe_media


def test_a_webm_written_as_a_stream_has_its_duration_from_its_packets(tmp_path: Path) -> None:
    """Browsers' MediaRecorder writes WebM as a stream, with no duration in its header (as ffmpeg
    does when writing to a pipe): the duration comes from the last packet instead."""
    clip = speak("Recorded in a browser.", tmp_path / "clip.wav")
    streamed = tmp_path / "recording.webm"
    with streamed.open("wb") as out:
        subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(clip), "-c:a", "libopus", "-f", "webm", "pipe:1"],
            stdout=out, check=True, timeout=60,
        )  # fmt: skip
    header = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(streamed)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert header.stdout.strip() == "N/A"  # the case at hand
    info = probe_media(streamed)
    assert abs(info.duration - duration(clip)) < 0.1
    assert info.audio_codec == "opus"
