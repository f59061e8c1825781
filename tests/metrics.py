"""Accuracy measures for tests: WER (jiwer) and DER (pyannote.metrics)."""

from __future__ import annotations

import re
from typing import Any

import jiwer
from pyannote.core import Annotation, Segment
from pyannote.metrics.diarization import DiarizationErrorRate

from tests.audio import Turn


def normalise_text(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9' ]", " ", text.lower())).strip()


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalise_text(reference), normalise_text(hypothesis)))


def der(truth: list[Turn], turns: list[dict[str, Any]]) -> float:
    reference = Annotation()
    for t in truth:
        reference[Segment(t.start, t.end)] = t.speaker
    hypothesis = Annotation()
    for t in turns:
        hypothesis[Segment(float(t["start"]), float(t["end"]))] = str(t["speaker"])
    # a 0.25 s collar around each true boundary, as is usual for DER
    return float(DiarizationErrorRate(collar=0.25)(reference, hypothesis))
