"""Re-embedding the stored voices when the speaker encoder changes (`whisperx-api speakers
reembed`), from the enrolment recordings kept with them."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from sqlalchemy import select

from whisperx_api.db.models import Speaker
from whisperx_api.runtime import Runtime
from whisperx_api.speaker_library.vectors import prepare
from whisperx_api.transcription.options import current_encoder, enrolment_options

logger = logging.getLogger(__name__)


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
