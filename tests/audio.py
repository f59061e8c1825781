"""Speech generated at test time with espeak-ng and ffmpeg: known text, known voices, known turns."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

VOICE_A = ["-v", "en-us", "-p", "35", "-s", "150"]
VOICE_B = ["-v", "en+f3", "-p", "75", "-s", "165"]
# ~14 s of German, long enough for reliable language detection with `base`
GERMAN = (
    "Guten Morgen. Heute ist das Wetter sehr schön. Die Sonne scheint und die Kinder spielen im Garten. "
    "Am Abend essen wir zusammen mit der ganzen Familie. Morgen fahren wir mit dem Zug nach Berlin."
)
GERMAN_VOICE = ["-v", "de", "-s", "140"]
# words an English translation of GERMAN should use, and German words it must not contain
GERMAN_IN_ENGLISH = {
    "good",
    "morning",
    "today",
    "weather",
    "sun",
    "garden",
    "children",
    "evening",
    "family",
    "train",
    "berlin",
}
GERMAN_ONLY = {"und", "die", "heute", "sonne", "garten"}


def speak(text: str, out: Path, voice: list[str] = VOICE_A) -> Path:
    """espeak-ng to a 16 kHz mono wav; text passed as an argument (never through a shell)."""
    raw = out.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", *voice, "-w", str(raw), text], check=True)
    convert(raw, out, "-ar", "16000", "-ac", "1")
    raw.unlink()
    return out


def convert(source: Path, target: Path, *args: str) -> Path:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), *args, str(target)],
        check=True,
    )
    return target


def silence(out: Path, seconds: float) -> Path:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono",
         "-t", str(seconds), str(out)],
        check=True,
    )  # fmt: skip
    return out


def duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True, check=True, text=True,
    )  # fmt: skip
    return float(out.stdout.strip())


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str
    start: float
    end: float


def dialogue(turns: list[tuple[str, str]], out: Path, gap: float = 0.6) -> list[Turn]:
    """Concatenate utterances (speaker 'A' or 'B') with silence between; return the true turns."""
    work = out.parent / f"{out.stem}_parts"
    work.mkdir(parents=True, exist_ok=True)
    pause = silence(work / "gap.wav", gap)
    parts: list[Path] = []
    truth: list[Turn] = []
    clock = 0.0
    for index, (speaker, text) in enumerate(turns):
        clip = speak(text, work / f"{index}.wav", VOICE_A if speaker == "A" else VOICE_B)
        length = duration(clip)
        truth.append(Turn(speaker, text, clock, clock + length))
        parts += [clip, pause]
        clock += length + gap
    concatenate(parts, out)
    return truth


def concatenate(parts: list[Path], out: Path) -> Path:
    listing = out.with_suffix(".list.txt")
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
         "-ar", "16000", "-ac", "1", str(out)],
        check=True,
    )  # fmt: skip
    return out
