"""Transcript renderers: SRT, WebVTT and plain text, with speaker labels when present."""

from __future__ import annotations

from whisperx_api.pipeline.results import Segment


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _line(segment: Segment) -> str:
    text = segment.text.strip()
    return f"[{segment.speaker}] {text}" if segment.speaker else text


def _timed(segments: list[Segment]) -> list[tuple[float, float, Segment]]:
    return [(s.start, s.end, s) for s in segments if s.start is not None and s.end is not None and s.text.strip()]


def render_srt(segments: list[Segment]) -> str:
    blocks = [
        f"{i}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{_line(s)}\n"
        for i, (start, end, s) in enumerate(_timed(segments), start=1)
    ]
    return "\n".join(blocks)


def render_vtt(segments: list[Segment]) -> str:
    blocks = []
    for start, end, s in _timed(segments):
        text = s.text.strip()
        body = f"<v {s.speaker}>{text}" if s.speaker else text
        blocks.append(f"{_clock(start, '.')} --> {_clock(end, '.')}\n{body}\n")
    return "WEBVTT\n\n" + "\n".join(blocks)


def render_txt(segments: list[Segment]) -> str:
    return "".join(_line(s) + "\n" for s in segments if s.text.strip())


RENDERERS = {"srt": render_srt, "vtt": render_vtt, "txt": render_txt}
CONTENT_TYPES = {"srt": "application/x-subrip", "vtt": "text/vtt", "txt": "text/plain"}
