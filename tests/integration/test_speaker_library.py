"""The library's in-memory indexes stay current across processes: two runtimes (two database
engines, two Redis connections, as two web processes would have) on one database and one Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import clear_queue, make_settings
from whisperx_api.pipeline.encoders import EMBEDDED_MODEL
from whisperx_api.runtime import Runtime
from whisperx_api.speaker_library.library import NewSpeaker, SpeakerLibrary
from whisperx_api.speaker_library.vectors import prepare

DIM = 256


def vec(*weights: float) -> list[float]:
    return list(weights) + [0.0] * (DIM - len(weights))


@pytest.fixture
async def two(tmp_path: Path, db_url: str) -> AsyncIterator[tuple[SpeakerLibrary, SpeakerLibrary]]:
    settings = make_settings(tmp_path / "data", db_url)
    first, second = await Runtime.start(settings), await Runtime.start(settings)
    try:
        yield first.speakers, second.speakers
    finally:
        await first.close()
        await second.close()
        clear_queue(settings.queue_name)


async def labels_found(library: SpeakerLibrary, *query: float) -> list[str]:
    _, hits = await library.search(prepare(vec(*query)), EMBEDDED_MODEL, limit=10, threshold=0.5)
    return [h.entry.label for h in hits]


async def add(library: SpeakerLibrary, label: str, *weights: float) -> str:
    (row,) = await library.add([NewSpeaker(label, prepare(vec(*weights)), EMBEDDED_MODEL)])
    return str(row.id)


async def test_changes_in_one_process_reach_the_other(two: tuple[SpeakerLibrary, SpeakerLibrary]) -> None:
    a, b = two
    x = await add(a, "x", 1.0)
    assert await labels_found(b, 1.0) == ["x"]
    loads = b.loads
    assert await labels_found(b, 1.0) == ["x"] and b.loads == loads  # current: no reload

    await add(a, "y", 0.0, 1.0)
    assert await labels_found(b, 0.0, 1.0) == ["y"]
    await a.update(uuid.UUID(x), {"label": "ex"})
    assert await labels_found(b, 1.0) == ["ex"]
    assert await b.delete_for_task(uuid.uuid4()) == 0
    (y_row,) = (await b.page(task_id=None, label="y", limit=10, offset=0))[0]
    assert await b.delete(y_row.id)
    assert await labels_found(a, 0.0, 1.0) == []


async def test_own_writes_patch_the_index_instead_of_reloading(two: tuple[SpeakerLibrary, SpeakerLibrary]) -> None:
    a, _ = two
    await add(a, "first", 1.0)
    assert await labels_found(a, 1.0) == ["first"]
    loads = a.loads
    await add(a, "second", 1.0, 0.1)
    assert await labels_found(a, 1.0) == ["first", "second"]
    assert a.loads == loads


async def test_a_redis_that_lost_its_data_forces_a_reload(two: tuple[SpeakerLibrary, SpeakerLibrary]) -> None:
    a, b = two
    await add(a, "kept", 1.0)
    assert await labels_found(b, 1.0) == ["kept"]
    await b._redis.delete(b._version_key)  # what a Redis restart without persistence does
    await add(a, "after restart", 1.0, 0.2)
    assert await labels_found(b, 1.0) == ["kept", "after restart"]
