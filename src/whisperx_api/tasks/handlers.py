"""Task type -> the coroutine that does its work. Pipeline calls run in threads, never on the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from whisperx_api.db.models import TaskType
from whisperx_api.pipeline.audio import probe_media
from whisperx_api.pipeline.engine import combine
from whisperx_api.pipeline.errors import PipelineError
from whisperx_api.pipeline.options import PipelineOptions
from whisperx_api.tasks.jobs import JobContext

Handler = Callable[[JobContext], Awaitable[Any]]


def _media(ctx: JobContext) -> Path:
    if ctx.media_path is None or not ctx.media_path.exists():
        raise PipelineError("the task's media file is missing (deleted or never stored)", "MEDIA_MISSING")
    return ctx.media_path


def _options(ctx: JobContext) -> PipelineOptions:
    return PipelineOptions.from_dict(ctx.params.get("options", {}))


async def media_probe(ctx: JobContext) -> dict[str, Any]:
    ctx.progress("probing", 0.1)
    info = await asyncio.to_thread(probe_media, _media(ctx))
    return info.as_dict()


async def full_process(ctx: JobContext) -> dict[str, Any]:
    options = _options(ctx)
    engine = ctx.runtime.engine
    return await engine.call(engine.run, _media(ctx), options, ctx.progress, align=True, diarize=options.diarization)


async def transcription(ctx: JobContext) -> dict[str, Any]:
    engine = ctx.runtime.engine
    return await engine.call(engine.run, _media(ctx), _options(ctx), ctx.progress, align=False, diarize=False)


async def alignment(ctx: JobContext) -> dict[str, Any]:
    engine = ctx.runtime.engine
    transcript = ctx.params["transcript"]
    return await engine.call(engine.align_transcript, _media(ctx), transcript, _options(ctx), ctx.progress)


async def diarization(ctx: JobContext) -> dict[str, Any]:
    engine = ctx.runtime.engine
    return await engine.call(engine.diarize_file, _media(ctx), _options(ctx), ctx.progress)


async def combination(ctx: JobContext) -> dict[str, Any]:
    ctx.progress("combining", 0.1)
    return await asyncio.to_thread(combine, ctx.params["transcript"], ctx.params["diarization"])


HANDLERS: dict[str, Handler] = {
    TaskType.MEDIA_PROBE.value: media_probe,
    TaskType.FULL_PROCESS.value: full_process,
    TaskType.TRANSCRIPTION.value: transcription,
    TaskType.TRANSCRIPTION_ALIGNMENT.value: alignment,
    TaskType.DIARIZATION.value: diarization,
    TaskType.COMBINE.value: combination,
}
