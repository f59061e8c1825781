"""Voices into the library: the pipeline options an enrolment runs with, and re-embedding the
stored voices when the speaker encoder changes (`whisperx-api speakers reembed`)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from sqlalchemy import select

from whisperx_api.db.models import Speaker
from whisperx_api.pipeline.encoders import speaker_encoder_model
from whisperx_api.pipeline.options import DiarizeOptions, PipelineOptions, VadOptions, WhisperOptions
from whisperx_api.runtime import Runtime
from whisperx_api.settings import Settings
from whisperx_api.speakers.vectors import prepare

logger = logging.getLogger(__name__)


def enrolment_options(settings: Settings) -> PipelineOptions:
    """An enrolment diarizes its recording as one speaker, with the service's own diarizer."""
    return PipelineOptions(
        whisper=WhisperOptions(device=settings.device, compute_type=settings.compute_type),
        vad=VadOptions(vad_method=settings.vad_method),
        diarize=DiarizeOptions(backend=settings.diarization_backend),
    )


def current_encoder(settings: Settings) -> str:
    return speaker_encoder_model(settings.diarization_backend, settings.hf_token, settings.pyannote_pipeline)


@dataclass(frozen=True)
class StoredVoice:
    id: UUID
    label: str
    encoder_model: str
    sample_path: str | None


@dataclass
class Reembedding:
    encoder_model: str
    done: list[StoredVoice] = field(default_factory=list)
    to_enrol_again: list[tuple[StoredVoice, str]] = field(default_factory=list)  # (voice, why)
    current: int = 0  # vectors already made by the current encoder


async def reembed(runtime: Runtime, *, dry_run: bool = False) -> Reembedding:
    """Recompute, with the current encoder, every stored vector made by another one whose
    enrolment recording was kept; list the others (they must be enrolled again)."""
    target = current_encoder(runtime.settings)
    report = Reembedding(target)
    async with runtime.db.get_session() as session:
        rows = (
            await session.execute(select(Speaker.id, Speaker.label, Speaker.encoder_model, Speaker.sample_path))
        ).all()
    options = enrolment_options(runtime.settings)
    for speaker_id, label, encoder_model, sample_path in rows:
        voice = StoredVoice(speaker_id, label, encoder_model, sample_path)
        if encoder_model == target:
            report.current += 1
        elif sample_path is None:
            report.to_enrol_again.append(
                (voice, "no voice sample was kept (posted vector, auto-stored, or KEEP_VOICE_SAMPLES=false)")
            )
        elif not await asyncio.to_thread(Path(sample_path).is_file):
            report.to_enrol_again.append((voice, f"its voice sample {sample_path} is missing"))
        else:
            if not dry_run:
                enrolment = await runtime.engine.speaker_embedding(Path(sample_path), options)
                await runtime.speakers.update(
                    speaker_id, {"vector": prepare(enrolment.vector), "encoder_model": enrolment.encoder_model}
                )
                logger.info("re-embedded speaker %s (%s): %s -> %s", speaker_id, label, encoder_model, target)
            report.done.append(voice)
    return report
