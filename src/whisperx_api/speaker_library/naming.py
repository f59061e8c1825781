"""Names for diarized speakers: identify them against the library, store the new ones.

Runs after a diarization task's pipeline, on its result (the pipeline itself knows nothing of
the library).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

import numpy as np

from whisperx_api.pipeline.results import Diarized, Identification, Segment, Transcript, with_words
from whisperx_api.speaker_library.library import NewSpeaker, SpeakerLibrary
from whisperx_api.speaker_library.vectors import Entry, Hit, VectorError, default_threshold, prepare


@dataclass(frozen=True)
class SpeakerNaming:
    """What a diarization task asked of the speaker library."""

    identify: bool = False
    auto_store: bool = False
    threshold: float | None = None  # None: the encoder's default (vectors.default_threshold)

    @property
    def wanted(self) -> bool:
        return self.identify or self.auto_store


def stored_label(raw: str, task_id: UUID) -> str:
    """Label of an auto-stored speaker until someone renames it: its diarization label and task."""
    return f"{raw}-{str(task_id)[:8]}"


def assign(candidates: dict[str, list[Hit]], threshold: float) -> dict[str, Hit]:
    """One library label per diarized speaker, best similarity first.

    The diarizer says the speakers of one recording are different people, so a label is given
    to one of them at most.
    """
    pairs = sorted(
        ((hit.similarity, raw, hit) for raw, hits in candidates.items() for hit in hits if hit.similarity >= threshold),
        key=lambda pair: (-pair[0], pair[1]),
    )
    chosen: dict[str, Hit] = {}
    used: set[str] = set()
    for _, raw, hit in pairs:
        if raw not in chosen and hit.entry.label not in used:
            chosen[raw] = hit
            used.add(hit.entry.label)
    return chosen


def relabel(result: Transcript | Diarized, names: dict[str, str]) -> None:
    """Replace raw speaker labels in segments and words; the segment keeps the raw one."""
    identification = result.speaker_identification or {}
    for segment in result.segments:
        raw = segment.speaker
        if raw is not None and raw in names:
            segment.speaker = names[raw]
            segment.speaker_raw = raw
            segment.speaker_similarity = identification[raw].similarity
        if isinstance(segment, Segment):
            for word in segment.words:
                if word.speaker in names:
                    word.speaker = names[word.speaker]
    if isinstance(result, Transcript):
        result.word_segments = with_words(result.segments)
    result.speakers = sorted({names.get(raw, raw) for raw in result.speakers or []})


async def name_speakers(
    library: SpeakerLibrary, task_id: UUID, result: Transcript | Diarized, naming: SpeakerNaming, keep_embeddings: bool
) -> Transcript | Diarized:
    """Add `speaker_identification` to a diarized result, in place (and apply it when asked)."""
    embeddings = result.speaker_embeddings or {}
    encoder_model = result.diarization.encoder_model if result.diarization is not None else ""
    vectors = {}
    for raw, values in embeddings.items():
        try:
            vectors[raw] = prepare(values)
        except VectorError:  # a speaker too short to embed: nothing to compare
            continue
    # the task's own earlier attempt may have stored speakers already: never compare with those
    candidates: dict[str, list[Hit]] = {}
    for raw, vector in vectors.items():
        _, ranked = await library.identify(vector, encoder_model, -1.0, exclude_task=task_id, limit=len(vectors))
        candidates[raw] = [hit for hit, _samples in ranked]
    threshold = naming.threshold if naming.threshold is not None else default_threshold(encoder_model)
    identified = assign(candidates, threshold)

    report: dict[str, Identification] = {}
    for raw in sorted(embeddings):
        hit = identified.get(raw)
        if hit is not None:
            report[raw] = Identification(
                status="identified", label=hit.entry.label, speaker_uuid=str(hit.entry.id), similarity=hit.similarity
            )
        else:
            closest = candidates.get(raw, [])
            report[raw] = Identification(
                status="unknown", similarity=closest[0].similarity if closest else None,
                closest_label=closest[0].entry.label if closest else None,
            )  # fmt: skip

    if naming.auto_store:
        unknown = [raw for raw in sorted(vectors) if raw not in identified]
        # an earlier attempt of this task may have stored some already
        stored = {s.label: s for s in (await library.page(task_id=task_id, label=None, limit=1000, offset=0))[0]}
        new = [
            NewSpeaker(
                stored_label(raw, task_id),
                vectors[raw],
                encoder_model,
                f"auto-stored from task {task_id} ({raw})",
                task_id,
            )
            for raw in unknown
            if stored_label(raw, task_id) not in stored
        ]
        stored.update({s.label: s for s in await library.add(new)})
        for raw in unknown:
            speaker = stored[stored_label(raw, task_id)]
            report[raw].status = "stored"
            report[raw].stored_label = speaker.label
            report[raw].stored_speaker_uuid = str(speaker.id)

    result.speaker_identification = report
    if naming.identify:
        relabel(result, {raw: hit.entry.label for raw, hit in identified.items()})
    if not keep_embeddings:
        result.speaker_embeddings = None
    return result


def name_known_speakers(result: Transcript, voices: dict[str, list[np.ndarray]], threshold: float) -> Transcript:
    """Name a diarized result's speakers after the voices a request brought (name -> unit
    vectors): one name per speaker, best similarity first, at least `threshold`; the others keep
    their raw labels. Adds `speaker_identification` and drops the embeddings, in place."""
    candidates: dict[str, list[Hit]] = {}
    for raw, values in (result.speaker_embeddings or {}).items():
        try:
            vector = prepare(values)
        except VectorError:  # a speaker too short to embed
            continue
        # the id is only the matcher's handle: these voices are not stored
        hits = [
            Hit(Entry(uuid4(), name, None), max(float(v @ vector) for v in known)) for name, known in voices.items()
        ]
        candidates[raw] = sorted(hits, key=lambda hit: -hit.similarity)
    named = assign(candidates, threshold)
    report: dict[str, Identification] = {}
    for raw, hits in sorted(candidates.items()):
        hit = named.get(raw)
        if hit is not None:
            report[raw] = Identification(status="identified", label=hit.entry.label, similarity=hit.similarity)
        else:
            closest = hits[0] if hits else None
            report[raw] = Identification(
                status="unknown", similarity=closest.similarity if closest else None,
                closest_label=closest.entry.label if closest else None,
            )  # fmt: skip
    result.speaker_identification = report
    relabel(result, {raw: hit.entry.label for raw, hit in named.items()})
    result.speaker_embeddings = None
    return result


def linked_speaker(result: Transcript | Diarized, name: str) -> UUID | None:
    """The library entry a speaker of the result is (identified as it, or stored as it), if any."""
    raw = next((s.speaker_raw or name for s in result.segments if s.speaker == name), name)
    found = (result.speaker_identification or {}).get(raw)
    if found is None:
        return None
    linked = found.stored_speaker_uuid if found.status == "stored" else found.speaker_uuid
    return UUID(linked) if linked else None


def rename(result: Transcript | Diarized, name: str, new: str) -> None:
    """Call a speaker of the result `new` wherever it is named `name`, in place; segments keep
    their diarization label in `speaker_raw`."""
    raw = name
    for segment in result.segments:
        if segment.speaker == name:
            raw = segment.speaker_raw or name
            segment.speaker_raw = raw
            segment.speaker = new
        if isinstance(segment, Segment):
            for word in segment.words:
                if word.speaker == name:
                    word.speaker = new
    if isinstance(result, Transcript):
        result.word_segments = with_words(result.segments)
    if result.speakers is not None:
        result.speakers = sorted({new if speaker == name else speaker for speaker in result.speakers})
    found = (result.speaker_identification or {}).get(raw)
    if found is not None and found.status == "identified":
        found.label = new
    elif found is not None and found.status == "stored":
        found.stored_label = new
