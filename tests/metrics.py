"""Accuracy measures for tests and benchmarks: WER (jiwer), DER, JER and identification error
(pyannote.metrics), and the word-level measures that matter to a reader: which speaker each
word is given, words without a duration, and how close each utterance's first word starts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import jiwer
import numpy as np
from pyannote.core import Annotation, Segment
from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate
from pyannote.metrics.identification import IdentificationErrorRate
from scipy.optimize import linear_sum_assignment

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
        reference[Segment(t.start, t.end), len(reference)] = names.get(t.speaker, t.speaker)
    hypothesis = Annotation()
    for turn in turns:
        hypothesis[Segment(float(turn["start"]), float(turn["end"])), len(hypothesis)] = str(turn["speaker"])
    return reference, hypothesis


def der(truth: list[Turn], turns: list[dict[str, Any]], collar: float = 0.25) -> float:
    """Diarization error rate (labels mapped optimally); `collar` s around true boundaries
    forgiven (0.25 s by default, the usual scoring)."""
    return float(DiarizationErrorRate(collar=collar)(*_annotations(truth, turns, {})))


def jer(truth: list[Turn], turns: list[dict[str, Any]]) -> float:
    """Jaccard error rate: every speaker counts the same, however long they talked."""
    return float(JaccardErrorRate(collar=0.0)(*_annotations(truth, turns, {})))


def ier(truth: list[Turn], turns: list[dict[str, Any]], names: dict[str, str]) -> float:
    """Identification error rate: like DER, but a turn counts only under its true name (no mapping)."""
    return float(IdentificationErrorRate(collar=0.25)(*_annotations(truth, turns, names)))


@dataclass(frozen=True)
class WordMatch:
    reference_speaker: str
    utterance: int  # index into the utterances
    first_of_utterance: bool
    word: dict[str, Any]  # the hypothesis word (word, start, end, speaker)
    exact: bool  # the same word (else a substitution)


def words_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for s in result["segments"] for w in s.get("words") or []]


def match_words(utterances: list[Turn], words: list[dict[str, Any]]) -> list[WordMatch]:
    """Reference words (each with its utterance's speaker) aligned to hypothesis words by text
    (jiwer's alignment: equal and substituted words pair up; inserted and deleted ones don't)."""
    reference: list[tuple[str, int, bool]] = []
    for index, utterance in enumerate(utterances):
        tokens = normalise_text(utterance.text).split()
        reference += [(utterance.speaker, index, position == 0) for position in range(len(tokens))]
    hypothesis: list[dict[str, Any]] = []
    for word in words:
        hypothesis += [word] * len(normalise_text(str(word["word"])).split())
    ref_text = " ".join(normalise_text(u.text) for u in utterances)
    hyp_text = " ".join(normalise_text(str(w["word"])) for w in words)
    if not ref_text.split() or not hyp_text.split():
        return []
    matches = []
    for chunk in jiwer.process_words(ref_text, hyp_text).alignments[0]:
        if chunk.type in ("equal", "substitute"):
            for offset in range(chunk.ref_end_idx - chunk.ref_start_idx):
                speaker, utterance, first = reference[chunk.ref_start_idx + offset]
                word = hypothesis[chunk.hyp_start_idx + offset]
                matches.append(WordMatch(speaker, utterance, first, word, chunk.type == "equal"))
    return matches


def word_speaker_accuracy(utterances: list[Turn], words: list[dict[str, Any]]) -> float:
    """Share of matched words given the right speaker, hypothesis labels mapped one-to-one onto
    reference speakers in the way that agrees with the most words."""
    matches = match_words(utterances, words)
    if not matches:
        return 0.0
    refs = sorted({m.reference_speaker for m in matches})
    hyps = sorted({str(m.word.get("speaker")) for m in matches})
    counts = np.zeros((len(refs), len(hyps)))
    for m in matches:
        counts[refs.index(m.reference_speaker), hyps.index(str(m.word.get("speaker")))] += 1
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / len(matches))


def zero_duration_share(words: list[dict[str, Any]]) -> float:
    """Share of words that have no duration (or no timing at all)."""
    if not words:
        return 0.0
    bad = sum(1 for w in words if w.get("start") is None or w.get("end") is None or w["end"] - w["start"] <= 0.0)
    return bad / len(words)


def first_word_offsets(utterances: list[Turn], words: list[dict[str, Any]]) -> dict[int, float]:
    """Per utterance whose first word was recognised (the same word, not a substitute):
    |hypothesis start - reference start| in s."""
    return {
        m.utterance: abs(float(m.word["start"]) - utterances[m.utterance].start)
        for m in match_words(utterances, words)
        if m.first_of_utterance and m.exact and m.word.get("start") is not None
    }
