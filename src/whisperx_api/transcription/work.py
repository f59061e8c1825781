"""What each task type does once it runs: the pipeline calls (in the inference process) and the
speaker library's part. Called by the transcription service's execute(), nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import numpy as np

from whisperx_api.db.models import TaskType
from whisperx_api.media.storage import MediaStore
from whisperx_api.pipeline.audio import MediaInfo, probe_media
from whisperx_api.pipeline.errors import PipelineError
from whisperx_api.pipeline.options import PipelineOptions
from whisperx_api.pipeline.progress import Progress
from whisperx_api.pipeline.remote import RemoteEngine
from whisperx_api.pipeline.results import Diarized, Enrolled, Segment, Transcript
from whisperx_api.speaker_library.library import NewSpeaker, SpeakerLibrary
from whisperx_api.speaker_library.naming import SpeakerNaming, name_known_speakers, name_speakers
from whisperx_api.speaker_library.vectors import VectorError, default_threshold, from_bytes, prepare
from whisperx_api.transcription.params import KnownSpeaker, TaskParams

Result = Transcript | Diarized | Enrolled | MediaInfo


@dataclass
class Work:
    """One task's inputs and the resources its work needs."""

    task_id: UUID
    task_type: TaskType
    params: TaskParams
    media_path: Path | None
    engine: RemoteEngine
    library: SpeakerLibrary
    voice_samples: MediaStore | None  # where an enrolment's recording is kept (None: not kept)
    progress: Progress
    on_segment: Callable[[Segment], None] | None = None


def _media(work: Work) -> Path:
    if work.media_path is None or not work.media_path.exists():
        raise PipelineError("the task's media file is missing (deleted or never stored)", "MEDIA_MISSING")
    return work.media_path


def _options(work: Work) -> PipelineOptions:
    return work.params.options or PipelineOptions()


async def _named(work: Work, result: Transcript | Diarized, naming: SpeakerNaming | None) -> Transcript | Diarized:
    if naming is None or not naming.wanted or not result.speaker_embeddings:
        return result
    work.progress("identifying speakers", 0.97)
    asked = _options(work).diarize.return_embeddings
    return await name_speakers(work.library, work.task_id, result, naming, keep_embeddings=asked)


def _wanting_vectors(work: Work) -> PipelineOptions:
    """Options that also return the speaker vectors, when the speaker library needs them."""
    options = _options(work)
    if work.params.speakers is not None and work.params.speakers.wanted:
        return replace(options, diarize=replace(options.diarize, return_embeddings=True))
    return options


async def full_process(work: Work) -> Result:
    options = _wanting_vectors(work)
    result = await work.engine.run(
        _media(work), options, work.progress, align=True, diarize=options.diarization, on_segment=work.on_segment
    )
    return await _named(work, result, work.params.speakers)


async def transcription(work: Work) -> Result:
    return await work.engine.run(
        _media(work), _options(work), work.progress, align=False, diarize=False, on_segment=work.on_segment
    )


async def alignment(work: Work) -> Result:
    if work.params.transcript is None:
        raise PipelineError("the task has no transcript to align", "INVALID_TASK")
    return await work.engine.align_transcript(_media(work), work.params.transcript, _options(work), work.progress)


async def diarization(work: Work) -> Result:
    result = await work.engine.diarize_file(_media(work), _wanting_vectors(work), work.progress)
    return await _named(work, result, work.params.speakers)


async def combination(work: Work) -> Result:
    if work.params.transcript is None or work.params.diarization is None:
        raise PipelineError("the task has no transcript or diarization to combine", "INVALID_TASK")
    work.progress("combining", 0.1)
    return await work.engine.combine(work.params.transcript, work.params.diarization)


async def media_probe(work: Work) -> Result:
    work.progress("probing", 0.1)
    return await asyncio.to_thread(probe_media, _media(work))


async def openai(work: Work) -> Result:
    options = _options(work)
    known = work.params.known_speakers or []
    if known:
        options = replace(options, diarize=replace(options.diarize, return_embeddings=True))
    # the known speakers' reference recordings are deleted with the task's files when it closes
    result = await work.engine.run(
        _media(work), options, work.progress, align=work.params.align, diarize=options.diarization,
        on_segment=work.on_segment,
    )  # fmt: skip
    if known and isinstance(result, Transcript) and result.speaker_embeddings:
        work.progress("identifying speakers", 0.97)
        encoder_model = result.diarization.encoder_model if result.diarization is not None else ""
        voices = await _known_voices(work, known, encoder_model, options)
        result = name_known_speakers(result, voices, default_threshold(encoder_model))
    return result


async def _known_voices(
    work: Work, known: list[KnownSpeaker], encoder_model: str, options: PipelineOptions
) -> dict[str, list[np.ndarray]]:
    """Each known name's voice: its reference embedded with the diarizer's encoder (stored in
    the library when asked), or the library's vectors of that label."""
    voices: dict[str, list[np.ndarray]] = {}
    for speaker in known:
        if speaker.reference is None:
            rows, _ = await work.library.page(task_id=None, label=speaker.name, limit=100, offset=0)
            stored = [from_bytes(row.vector) for row in rows if row.encoder_model == encoder_model]
            if not stored:
                raise PipelineError(
                    f"{speaker.name!r} has no reference recording, and the speaker library has no voice of that "
                    "name: give a known_speaker_references[] entry for it or enrol it under /speakers",
                    "KNOWN_SPEAKER_NOT_FOUND",
                )
            voices.setdefault(speaker.name, []).extend(stored)
            continue
        found = await work.engine.speaker_embedding(Path(speaker.reference), options)
        try:
            vector = prepare(found.vector)
        except VectorError as exc:
            raise PipelineError(
                f"the reference recording of {speaker.name!r} gives no voice to compare: {exc.message}",
                "KNOWN_SPEAKER_REFERENCE_UNUSABLE",
            ) from None
        voices.setdefault(speaker.name, []).append(vector)
        if speaker.store:
            note = f"known_speaker_references[] of /v1 task {work.task_id}"
            await work.library.add([NewSpeaker(speaker.name, vector, found.encoder_model, note, work.task_id)])
    return voices


async def enrolment(work: Work) -> Result:
    """A voice into the library: its vector from the recording (diarized as one speaker, so
    comparable with diarization tasks' vectors), its recording kept for re-embedding."""
    asked = work.params.enrolment
    if asked is None:
        raise PipelineError("the task says nobody to enrol", "INVALID_TASK")
    path = _media(work)
    found = await work.engine.speaker_embedding(path, _options(work))
    try:
        vector = prepare(found.vector)
        await work.library.check_dimension(found.encoder_model, int(vector.size))
    except VectorError as exc:
        raise PipelineError(exc.message, exc.code) from None
    speaker_id = uuid4()
    sample = str(work.voice_samples.adopt(path, speaker_id)) if work.voice_samples is not None else None
    try:
        (speaker,) = await work.library.add(
            [
                NewSpeaker(
                    asked.speaker_label,
                    vector,
                    found.encoder_model,
                    asked.description,
                    asked.task_uuid,
                    speaker_id,
                    sample,
                )
            ]
        )
    except BaseException:
        if work.voice_samples is not None:
            work.voice_samples.delete(sample)
        raise
    return Enrolled(
        speaker_uuid=str(speaker.id), speaker_label=speaker.label, encoder_model=speaker.encoder_model,
        dimension=speaker.dimension, speech_seconds=found.speech_seconds, audio_duration=found.duration,
    )  # fmt: skip


PERFORM: dict[TaskType, Callable[[Work], Awaitable[Result]]] = {
    TaskType.FULL_PROCESS: full_process,
    TaskType.TRANSCRIPTION: transcription,
    TaskType.TRANSCRIPTION_ALIGNMENT: alignment,
    TaskType.DIARIZATION: diarization,
    TaskType.COMBINE: combination,
    TaskType.MEDIA_PROBE: media_probe,
    TaskType.OPENAI_TRANSCRIPTION: openai,
    TaskType.OPENAI_TRANSLATION: openai,
    TaskType.SPEAKER_ENROLMENT: enrolment,
}


def facts(result: Any) -> dict[str, Any]:
    """What a finished task's row records besides the result: its language and audio duration."""
    language = getattr(result, "language", None)
    duration = getattr(result, "duration", None)
    return {k: v for k, v in (("language", language), ("audio_duration", duration)) if v is not None}
