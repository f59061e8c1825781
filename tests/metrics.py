"""Accuracy measures for tests: WER (jiwer), DER and identification error (pyannote.metrics)."""

from __future__ import annotations

import re
from typing import Any

import jiwer
from pyannote.core import Annotation, Segment
from pyannote.metrics.diarization import DiarizationErrorRate
from pyannote.metrics.identification import IdentificationErrorRate

from tests.audio import Turn


def normalise_text(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9' ]", " ", text.lower())).strip()


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalise_text(reference), normalise_text(hypothesis)))


def _annotations(
    truth: list[Turn], turns: list[dict[str, Any]], names: dict[str, str]
) -> tuple[Annotation, Annotation]:
    reference = Annotation()
    for t in truth:
        reference[Segment(t.start, t.end)] = names.get(t.speaker, t.speaker)
    hypothesis = Annotation()
    for turn in turns:
        hypothesis[Segment(float(turn["start"]), float(turn["end"]))] = str(turn["speaker"])
    return reference, hypothesis


def der(truth: list[Turn], turns: list[dict[str, Any]]) -> float:
    """Diarization error rate (labels mapped optimally); a 0.25 s collar around true boundaries."""
    return float(DiarizationErrorRate(collar=0.25)(*_annotations(truth, turns, {})))


def ier(truth: list[Turn], turns: list[dict[str, Any]], names: dict[str, str]) -> float:
    """Identification error rate: like DER, but a turn counts only under its true name (no mapping)."""
    return float(IdentificationErrorRate(collar=0.25)(*_annotations(truth, turns, names)))
