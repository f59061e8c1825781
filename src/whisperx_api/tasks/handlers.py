"""Task type -> the coroutine that does its work (the pipeline runs in threads)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from whisperx_api.db.models import TaskType
from whisperx_api.pipeline.audio import probe_media
from whisperx_api.pipeline.errors import PipelineError
from whisperx_api.tasks.jobs import JobContext

Handler = Callable[[JobContext], Awaitable[Any]]


async def media_probe(ctx: JobContext) -> dict[str, Any]:
    if ctx.media_path is None:
        raise PipelineError("task has no media", "MEDIA_MISSING")
    ctx.progress("probing", 0.1)
    info = await asyncio.to_thread(probe_media, ctx.media_path)
    return info.as_dict()


HANDLERS: dict[str, Handler] = {
    TaskType.MEDIA_PROBE.value: media_probe,
}
