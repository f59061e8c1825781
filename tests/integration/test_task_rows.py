"""Task rows as the lifecycle writes them (transcription/rows.py), on real SQLite and PostgreSQL:
what a write stores, and that a written result does not stay in the process after its write."""

from __future__ import annotations

import asyncio
import gc
import uuid
import weakref
from typing import Any

import pytest

from whisperx_api.db.config import make_db_config, upgrade_database
from whisperx_api.pipeline.results import Segment, Transcript, Word
from whisperx_api.settings import Settings
from whisperx_api.transcription.rows import TaskRows

pytestmark = pytest.mark.timeout(120)


class TrackedTranscript(Transcript, weakref=True):
    """A transcript a test can tell is gone (msgspec Structs take no weak reference by default)."""


def transcript(text: str) -> TrackedTranscript:
    words = [Word(word=w, start=i * 0.5, end=i * 0.5 + 0.4, score=0.9) for i, w in enumerate(text.split())]
    return TrackedTranscript(
        segments=[Segment(start=0.0, end=len(words) * 0.5, text=text, words=words)], word_segments=words, language="en"
    )


async def test_a_written_result_is_stored_whole_and_not_kept_by_the_process(settings: Settings) -> None:
    """The final write's values bound into its statement stayed with the statement in SQLAlchemy's
    compiled cache (the first statement of each shape is kept for good): a four-hour result, 40 MB
    of objects, stayed in the web process after its task. Two writes of that shape, each read back."""
    await asyncio.to_thread(upgrade_database, settings)
    config = make_db_config(settings)
    rows = TaskRows(config, counted=lambda: None)
    try:
        tasks = [
            await rows.insert(id=uuid.uuid4(), status="processing", task_type="full_process", params={}, file_name="a")
            for _ in range(2)
        ]
        refs: list[weakref.ref[Any]] = []
        for task, text in zip(tasks, ("hello there", "good morning to you"), strict=True):
            result = transcript(text)
            refs.append(weakref.ref(result))
            await rows.update(task.id, status="completed", result=result, progress=1.0, stage="done")
            del result
        for task, text in zip(tasks, ("hello there", "good morning to you"), strict=True):
            stored = await rows.get(task.id)
            assert stored is not None and stored.status == "completed" and stored.stage == "done"
            assert stored.result["segments"][0]["text"] == text
            assert [w["word"] for w in stored.result["word_segments"]] == text.split()
            assert stored.result["language"] == "en" and "speaker" not in stored.result["segments"][0]
        gc.collect()
        assert [ref() for ref in refs] == [None, None]
        # a write of another shape (progress) leaves the result alone
        await rows.update(tasks[0].id, progress=0.5)
        stored = await rows.get(tasks[0].id)
        assert stored is not None and stored.progress == 0.5 and stored.result["segments"][0]["text"] == "hello there"
    finally:
        await config.get_engine().dispose()
