"""Task type -> the coroutine that does its work. Pipeline calls run in threads, never on the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from whisperx_api.db.models import TaskType
from whisperx_api.pipeline.audio import probe_media
from whisperx_api.pipeline.errors import PipelineError
from whisperx_api.pipeline.options import PipelineOptions
from whisperx_api.speakers.naming import SpeakerNaming, name_speakers
from whisperx_api.tasks.jobs import JobContext

Handler = Callable[[JobContext], Awaitable[Any]]


def _media(ctx: JobContext) -> Path:
    if ctx.media_path is None or not ctx.media_path.exists():
        raise PipelineError("the task's media file is missing (deleted or never stored)", "MEDIA_MISSING")
    return ctx.media_path


def _options(ctx: JobContext) -> PipelineOptions:
    return PipelineOptions.from_dict(ctx.params.get("options", {}))


def _naming(ctx: JobContext, options: PipelineOptions) -> tuple[SpeakerNaming, PipelineOptions]:
    """The task's speaker-library requests, and options that return the vectors they need."""
    naming = SpeakerNaming.from_dict(ctx.params.get("speakers"))
    if naming.wanted:
        options = replace(options, diarize=replace(options.diarize, return_embeddings=True))
    return naming, options


async def _named(
    ctx: JobContext, result: dict[str, Any], naming: SpeakerNaming, asked: PipelineOptions
) -> dict[str, Any]:
    if not naming.wanted or "speaker_embeddings" not in result:
        return result
    ctx.progress("identifying speakers", 0.97)
    return await name_speakers(
        ctx.runtime.speakers, ctx.task_id, result, naming, keep_embeddings=asked.diarize.return_embeddings
    )


async def media_probe(ctx: JobContext) -> dict[str, Any]:
    ctx.progress("probing", 0.1)
    info = await asyncio.to_thread(probe_media, _media(ctx))
    return info.as_dict()


async def full_process(ctx: JobContext) -> dict[str, Any]:
    asked = _options(ctx)
    naming, options = _naming(ctx, asked)
    engine = ctx.runtime.engine
    result = await engine.run(_media(ctx), options, ctx.progress, align=True, diarize=options.diarization)
    return await _named(ctx, result, naming, asked)


async def transcription(ctx: JobContext) -> dict[str, Any]:
    engine = ctx.runtime.engine
    return await engine.run(_media(ctx), _options(ctx), ctx.progress, align=False, diarize=False)


async def alignment(ctx: JobContext) -> dict[str, Any]:
    engine = ctx.runtime.engine
    transcript = ctx.params["transcript"]
    return await engine.align_transcript(_media(ctx), transcript, _options(ctx), ctx.progress)


async def diarization(ctx: JobContext) -> dict[str, Any]:
    asked = _options(ctx)
    naming, options = _naming(ctx, asked)
    engine = ctx.runtime.engine
    result = await engine.diarize_file(_media(ctx), options, ctx.progress)
    return await _named(ctx, result, naming, asked)


async def combination(ctx: JobContext) -> dict[str, Any]:
    ctx.progress("combining", 0.1)
    return await ctx.runtime.engine.combine(ctx.params["transcript"], ctx.params["diarization"])


HANDLERS: dict[str, Handler] = {
    TaskType.MEDIA_PROBE.value: media_probe,
    TaskType.FULL_PROCESS.value: full_process,
    TaskType.TRANSCRIPTION.value: transcription,
    TaskType.TRANSCRIPTION_ALIGNMENT.value: alignment,
    TaskType.DIARIZATION.value: diarization,
    TaskType.COMBINE.value: combination,
}
