"""Transcript renderers: SRT, WebVTT and plain text, with speaker labels when present."""

from __future__ import annotations

from typing import Any


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _line(segment: dict[str, Any]) -> str:
    text = str(segment.get("text", "")).strip()
    speaker = segment.get("speaker")
    return f"[{speaker}] {text}" if speaker else text


def _timed(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        s
        for s in segments
        if s.get("start") is not None and s.get("end") is not None and str(s.get("text", "")).strip()
    ]


def render_srt(segments: list[dict[str, Any]]) -> str:
    blocks = [
        f"{i}\n{_clock(s['start'], ',')} --> {_clock(s['end'], ',')}\n{_line(s)}\n"
        for i, s in enumerate(_timed(segments), start=1)
    ]
    return "\n".join(blocks)


def render_vtt(segments: list[dict[str, Any]]) -> str:
    blocks = []
    for s in _timed(segments):
        speaker = s.get("speaker")
        text = str(s.get("text", "")).strip()
        body = f"<v {speaker}>{text}" if speaker else text
        blocks.append(f"{_clock(s['start'], '.')} --> {_clock(s['end'], '.')}\n{body}\n")
    return "WEBVTT\n\n" + "\n".join(blocks)


def render_txt(segments: list[dict[str, Any]]) -> str:
    return "".join(_line(s) + "\n" for s in segments if str(s.get("text", "")).strip())


RENDERERS = {"srt": render_srt, "vtt": render_vtt, "txt": render_txt}
CONTENT_TYPES = {"srt": "application/x-subrip", "vtt": "text/vtt", "txt": "text/plain"}
