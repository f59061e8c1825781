"""Speech with known words, times and speakers, for accuracy tests and the accuracy benchmark.

- the real call: pyannote.audio's sample (30 s, two people on a telephone line) with its
  reference turns (RTTM) and utterances (STM), as shipped and degraded the way phone recordings
  arrive (8 kHz, 24 kbit/s mp3);
- espeak-ng dialogues of several voice pairs;
- a four-person meeting with overlapping turns, mixed from espeak-ng utterances.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.audio import Turn, convert, speak

SAMPLE_RATE = 16000


def _pyannote_sample_dir() -> Path:
    import pyannote.audio

    return Path(pyannote.audio.__file__).parent / "sample"


@dataclass(frozen=True)
class Recording:
    """Audio with its truth: `turns` who spoke when (may overlap); `utterances` what they said
    (speaker, text, start, end), in the order spoken."""

    name: str
    path: Path
    turns: list[Turn]
    utterances: list[Turn]
    duration: float

    @property
    def speakers(self) -> set[str]:
        return {t.speaker for t in self.turns}

    @property
    def text(self) -> str:
        return " ".join(u.text for u in self.utterances)


def real_call() -> Recording:
    folder = _pyannote_sample_dir()
    turns = []
    for line in (folder / "sample.rttm").read_text().splitlines():
        fields = line.split()
        start, length = float(fields[3]), float(fields[4])
        turns.append(Turn(fields[7], "", start, start + length))
    utterances = []
    for line in (folder / "sample.stm").read_text().splitlines():
        fields = line.split(maxsplit=5)
        utterances.append(Turn(fields[2], fields[5], float(fields[3]), float(fields[4])))
    return Recording("real call", folder / "sample.wav", turns, utterances, 30.0)


def phone_quality(recording: Recording, out_dir: Path) -> Recording:
    """The same recording as a phone line delivers it: 8 kHz mono, 24 kbit/s mp3."""
    target = convert(recording.path, out_dir / "call_8k_24kbps.mp3", "-ar", "8000", "-ac", "1", "-b:a", "24k")
    return Recording(f"{recording.name}, 8 kHz mp3", target, recording.turns, recording.utterances, recording.duration)


# espeak-ng voices (language+variant, pitch, speed), each pair clearly two people
VOICES = {
    "us-male": ["-v", "en-us", "-p", "35", "-s", "150"],
    "female-3": ["-v", "en+f3", "-p", "75", "-s", "165"],
    "gb-male-3": ["-v", "en-gb+m3", "-p", "45", "-s", "155"],
    "us-male-7": ["-v", "en-us+m7", "-p", "25", "-s", "145"],
    "female-2": ["-v", "en+f2", "-p", "60", "-s", "160"],
    "female-4": ["-v", "en+f4", "-p", "85", "-s", "150"],
    "rp-male-1": ["-v", "en-gb-x-rp+m1", "-p", "50", "-s", "140"],
    "female-5": ["-v", "en+f5", "-p", "70", "-s", "170"],
}
VOICE_PAIRS = [("us-male", "female-3"), ("gb-male-3", "us-male-7"), ("female-2", "female-4")]
DIALOGUE_LINES = [
    "Good morning, how are you doing today?",
    "I am doing very well, thank you for asking.",
    "Shall we talk about the budget for next year?",
    "Yes, I think we should increase the marketing spend.",
    "That sounds reasonable to me, but we need the numbers first.",
    "I will send them to you after lunch.",
]
MEETING_VOICES = ["us-male", "female-2", "rp-male-1", "female-5"]
# (speaker index, text, seconds after the previous utterance ends; negative = talks over it)
MEETING_SCRIPT = [
    (0, "Let us start the weekly meeting with the sales report.", 0.5),
    (1, "Sales grew by four percent in the northern region.", 0.5),
    (2, "That is better than we expected last month.", -0.8),
    (3, "The southern region is still behind the plan.", 0.6),
    (0, "What do we need to catch up before the summer?", 0.5),
    (1, "More people in the shops on weekends would help.", -1.0),
    (2, "I can move two of my staff there next week.", 0.7),
    (3, "Thank you, that solves the biggest problem.", 0.5),
    (0, "Good, then we meet again next Monday.", -0.6),
]


def _load(path: Path) -> np.ndarray:
    audio, rate = sf.read(str(path), dtype="float32")
    assert rate == SAMPLE_RATE
    return audio


def _trimmed(audio: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Drop espeak's leading and trailing silence, so a turn's truth starts and ends with speech."""
    loud = np.nonzero(np.abs(audio) > threshold)[0]
    return audio[loud[0] : loud[-1] + 1] if loud.size else audio


def _mix(name: str, placed: list[tuple[str, str, float, np.ndarray]], out: Path) -> Recording:
    """placed: (speaker, text, start s, audio); writes the sum (with 0.5 s margins) and its truth."""
    margin = 0.5
    end = max(start + len(audio) / SAMPLE_RATE for _, _, start, audio in placed)
    mix = np.zeros(int((end + 2 * margin) * SAMPLE_RATE) + 1, dtype=np.float32)
    turns = []
    for speaker, text, start, audio in placed:
        at = int((start + margin) * SAMPLE_RATE)
        mix[at : at + len(audio)] += audio
        turns.append(Turn(speaker, text, round(start + margin, 3), round(start + margin + len(audio) / SAMPLE_RATE, 3)))
    mix /= max(1.0, float(np.abs(mix).max()) / 0.9)
    sf.write(str(out), mix, SAMPLE_RATE, subtype="PCM_16")
    return Recording(name, out, turns, turns, len(mix) / SAMPLE_RATE)


def _utterance(text: str, voice: str, out: Path) -> np.ndarray:
    return _trimmed(_load(speak(text, out, VOICES[voice])))


def espeak_dialogue(first: str, second: str, out_dir: Path, gap: float = 0.6) -> Recording:
    """Two voices taking turns, DIALOGUE_LINES alternately, `gap` seconds of silence between."""
    work = out_dir / f"{first}_{second}"
    work.mkdir(parents=True, exist_ok=True)
    placed, clock = [], 0.0
    for index, line in enumerate(DIALOGUE_LINES):
        voice = (first, second)[index % 2]
        audio = _utterance(line, voice, work / f"{index}.wav")
        placed.append((voice, line, clock, audio))
        clock += len(audio) / SAMPLE_RATE + gap
    return _mix(f"espeak {first} / {second}", placed, out_dir / f"dialogue_{first}_{second}.wav")


def espeak_meeting(out_dir: Path) -> Recording:
    """Four voices, three of the turns starting before the previous one has ended."""
    work = out_dir / "meeting"
    work.mkdir(parents=True, exist_ok=True)
    placed, clock = [], 0.0
    for index, (who, line, pause) in enumerate(MEETING_SCRIPT):
        voice = MEETING_VOICES[who]
        audio = _utterance(line, voice, work / f"{index}.wav")
        start = max(0.0, clock + pause)
        placed.append((voice, line, start, audio))
        clock = start + len(audio) / SAMPLE_RATE
    return _mix("espeak meeting of 4, overlaps", placed, out_dir / "meeting_4.wav")


def cut(recording: Recording, start: float, end: float, out: Path) -> Path:
    """A piece of a recording (for enrolling a voice from part of it)."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", str(start), "-to", str(end), "-i", str(recording.path),
         "-ar", str(SAMPLE_RATE), "-ac", "1", str(out)],
        check=True,
    )  # fmt: skip
    return out


def exclusive_speech(recording: Recording, speaker: str, start: float, end: float, out: Path) -> Path:
    """Everything `speaker` says alone (no one else talking) between `start` and `end`, joined."""
    audio = _load(recording.path)
    own = np.zeros(len(audio), dtype=bool)
    for turn in recording.turns:
        if turn.speaker == speaker:
            own[int(turn.start * SAMPLE_RATE) : int(turn.end * SAMPLE_RATE)] = True
    for turn in recording.turns:
        if turn.speaker != speaker:
            own[int(turn.start * SAMPLE_RATE) : int(turn.end * SAMPLE_RATE)] = False
    own[: int(start * SAMPLE_RATE)] = False
    own[int(end * SAMPLE_RATE) :] = False
    sf.write(str(out), audio[own], SAMPLE_RATE, subtype="PCM_16")
    return out


# words for the long conversation's sentences: every utterance is a different sentence at a
# slightly different speed and pitch (a recording made of one block repeated gives bit-identical
# pieces, which no real recording has and which the speaker clustering groups by position)
_SUBJECTS = [
    "The new team",
    "Our neighbour",
    "My sister",
    "The city council",
    "A small company",
    "The old school",
    "Every driver",
    "The museum",
    "Our manager",
    "The local farmer",
    "A young doctor",
    "The radio station",
]
_VERBS = ["bought", "painted", "repaired", "visited", "measured", "described", "ordered", "moved", "cleaned", "planned"]
_OBJECTS = [
    "a green bicycle",
    "the wooden bridge",
    "three large windows",
    "the northern garden",
    "a quiet office",
    "the summer festival",
    "two heavy boxes",
    "the train timetable",
    "a bright kitchen",
    "the river path",
]
_WHEN = [
    "last Monday",
    "before the storm",
    "after lunch",
    "in the early morning",
    "during the holidays",
    "next winter",
    "on a rainy afternoon",
    "at the end of the month",
]


def espeak_conversation(minutes: float, out: Path, seed: int = 7, gap: float = 0.5) -> Recording:
    """Two voices (us-male, female-3) taking turns for `minutes`, one to three sentences a turn,
    written as a 64 kbit/s mp3. Synthesised turn by turn and piped to ffmpeg, so a four-hour
    recording never sits whole in memory."""
    import random
    import tempfile

    rng = random.Random(seed)
    voices = ("us-male", "female-3")
    encoder = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "f32le", "-ar", str(SAMPLE_RATE), "-ac", "1", "-i", "-",
         "-b:a", "64k", str(out)],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    assert encoder.stdin is not None
    turns: list[Turn] = []
    clock, turn = 0.0, 0
    pause = np.zeros(int(gap * SAMPLE_RATE), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        while clock < minutes * 60:
            voice = voices[turn % 2]
            text = " ".join(
                f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_WHEN)}."
                for _ in range(rng.randint(1, 3))
            )
            options = list(VOICES[voice])
            options[3] = str(int(options[3]) + rng.randint(-5, 5))  # pitch
            options[5] = str(int(options[5]) + rng.randint(-12, 12))  # speed
            audio = _trimmed(_load(speak(text, Path(tmp) / "turn.wav", options)))
            encoder.stdin.write(audio.astype(np.float32).tobytes() + pause.tobytes())
            length = len(audio) / SAMPLE_RATE
            turns.append(Turn(voice, text, round(clock, 3), round(clock + length, 3)))
            clock += length + gap
            turn += 1
    encoder.stdin.close()
    if encoder.wait() != 0:
        raise RuntimeError("ffmpeg could not write the conversation")
    return Recording(f"espeak conversation, {minutes:g} min", out, turns, turns, clock)
