"""Media probing and decoding with ffmpeg."""

from __future__ import annotations

import json
import mmap
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from whisperx_api.memory import release_freed_memory
from whisperx_api.pipeline.errors import AudioProcessingError

SAMPLE_RATE = 16_000
AUDIO_EXTENSIONS = (".oga", ".m4a", ".aac", ".wav", ".amr", ".wma", ".awb", ".mp3", ".ogg", ".opus", ".flac")
# .webm: what browsers record from a microphone (MediaRecorder)
VIDEO_EXTENSIONS = (".wmv", ".mkv", ".avi", ".mov", ".mp4", ".webm")
ALLOWED_EXTENSIONS = AUDIO_EXTENSIONS + VIDEO_EXTENSIONS
PROBE_TIMEOUT_S = 60
# while a pipeline runs, the decoded audio's pages it has read and the heap memory it freed
# leave the process this often (audio.memory_released)
PAGE_RELEASE_S = 5.0


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    format_name: str
    audio_codec: str
    sample_rate: int
    channels: int
    has_video: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "duration": self.duration,
            "format": self.format_name,
            "audio_codec": self.audio_codec,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "has_video": self.has_video,
        }


def probe_media(path: Path) -> MediaInfo:
    """Read container and audio stream facts; raise AudioProcessingError for anything unusable."""
    if not path.exists() or path.stat().st_size == 0:
        raise AudioProcessingError("the file is empty")
    try:
        proc = subprocess.run(
            ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
            capture_output=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AudioProcessingError("the file could not be read in time") from None
    if proc.returncode != 0:
        raise AudioProcessingError(f"the file is not readable media: {_ffmpeg_reason(proc.stderr, path)}")
    data = json.loads(proc.stdout or b"{}")
    streams = data.get("streams", [])
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if audio is None:
        raise AudioProcessingError("the file has no audio stream")
    fmt = data.get("format", {})
    duration = _float(fmt.get("duration")) or _float(audio.get("duration")) or _duration_from_packets(path)
    if not duration or duration <= 0:
        raise AudioProcessingError("the audio stream has no duration (empty or corrupt)")
    return MediaInfo(
        duration=round(duration, 3),
        format_name=str(fmt.get("format_name", "")),
        audio_codec=str(audio.get("codec_name", "")),
        sample_rate=int(audio.get("sample_rate") or 0),
        channels=int(audio.get("channels") or 0),
        has_video=any(s.get("codec_type") == "video" and not _is_cover_art(s) for s in streams),
    )


def _duration_from_packets(path: Path) -> float | None:
    """The end of the last audio packet, for containers written as a stream whose header has no
    duration (a browser's MediaRecorder WebM). Demuxing only, no decoding."""
    try:
        proc = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "packet=pts_time,duration_time",
             "-of", "csv=p=0", str(path)],
            capture_output=True, timeout=PROBE_TIMEOUT_S, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None
    ends = []
    for line in proc.stdout.decode(errors="replace").splitlines():
        pts, _, length = line.partition(",")
        start = _float(pts)
        if start is not None:
            ends.append(start + (_float(length.strip(",")) or 0.0))
    return max(ends) if ends else None


def _ffmpeg_reason(stderr: bytes, path: Path) -> str:
    """ffmpeg's last error line, without the server-side path."""
    lines = stderr.decode(errors="replace").strip().splitlines()
    reason = lines[-1] if lines else "unknown error"
    return reason.replace(f"{path}: ", "").replace(str(path), "input")


def _is_cover_art(stream: dict[str, object]) -> bool:
    disposition = stream.get("disposition")
    return isinstance(disposition, dict) and bool(disposition.get("attached_pic"))


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def decode_audio(path: Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode any media file to mono float32 PCM at `sample_rate`, as a read-only array.

    ffmpeg writes the samples (64 KB per second of audio: 230 MB an hour, 920 MB for four) into
    an unnamed temporary file beside the media, on the data volume, and the array maps that file.
    Reading the decoder's output into memory held the whole recording twice at the end of the
    decode (the pipe's chunks and their join) and once for the whole run; mapped, the pages a
    stage reads are page cache the kernel can drop under pressure, and `memory_released` hands
    them back while the stages run. The file is gone from the disk once the array is.
    """
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-threads", "0", "-i", str(path), "-vn",
           "-f", "f32le", "-ac", "1", "-ar", str(sample_rate), "-"]  # fmt: skip
    # a media file outside the data volume (a test's, a read-only folder) decodes in the temp folder
    folder = path.parent if os.access(path.parent, os.W_OK) else None
    with tempfile.TemporaryFile(dir=folder, prefix=".decoded-") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, check=False)
        if proc.returncode != 0:
            raise AudioProcessingError(f"could not decode audio: {_ffmpeg_reason(proc.stderr, path)}")
        size = out.seek(0, os.SEEK_END) // 4 * 4
        if size == 0:
            raise AudioProcessingError("the file decodes to no audio")
        mapped = mmap.mmap(out.fileno(), size, access=mmap.ACCESS_READ)  # keeps the file open itself
    return np.frombuffer(mapped, dtype=np.float32)


def release_pages(audio: np.ndarray) -> None:
    """Take the decoded audio's pages out of this process's memory: they stay in the page cache,
    so a later stage that reads them again gets them back without decoding or disk reads. For an
    array that does not map a decoded file, nothing happens."""
    base = audio.base
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    if isinstance(base, mmap.mmap) and not base.closed:
        base.madvise(mmap.MADV_DONTNEED)


@contextmanager
def memory_released(audio: np.ndarray, every_s: float = PAGE_RELEASE_S) -> Iterator[None]:
    """While the block runs, every `every_s` seconds and at its end, the decoded audio's pages
    leave the process (its resident share is the few seconds of audio read since, whatever the
    recording's length) and so does the heap memory the stages freed. Safe while other threads
    read the array: a page read again comes back from the page cache.

    The heap: glibc keeps what torch's threads free in their arenas, and the diarizer's CAM++
    batches (a new mix of clip lengths each) left it growing with the recording: 585 -> 1,341 MB
    through the embeddings of 30 minutes (limited to two arenas, still 1,640 MB for 60), given
    back only when the stage ended. Handed back every 5 s the peak was 1,103 MB for 30 minutes
    and 1,114 for 60, in the same time.
    """
    stop = threading.Event()

    def release() -> None:
        while not stop.wait(every_s):
            release_pages(audio)
            release_freed_memory()

    thread = threading.Thread(target=release, name="memory-release", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        release_pages(audio)
