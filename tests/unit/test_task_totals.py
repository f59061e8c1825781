"""The task list's `total` (tasks/reads.py): counted with the first page, then again at most once
per TOTAL_MAX_AGE_S by one background read however many pages find it old; this process's own
changes show at once, with one count for all the pages that wait for it. The database is a fake here (counts and pages on demand, named as such);
the real reads are tested in tests/integration/test_read_engine.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from whisperx_api.tasks import reads
from whisperx_api.tasks.reads import TaskReader

pytestmark = pytest.mark.timeout(30)


class FakeReads:
    """A read engine whose count is `tasks` (waiting for `counting` to be set) and whose pages
    are empty."""

    def __init__(self, tasks: int) -> None:
        self.tasks, self.counts = tasks, 0
        self.counting = asyncio.Event()
        self.counting.set()

    async def fetch(self, *statements: Any, bounded: bool = False) -> list[Any]:
        answers: list[Any] = []
        for statement, _ in statements:
            if statement in reads._COUNTS.values():
                self.counts += 1
                counted = self.tasks
                await self.counting.wait()
                answers.append([(counted,)])
            else:
                answers.append([])
        return answers

    async def dispose(self) -> None: ...


async def totals(reader: TaskReader, pages: int) -> list[int]:
    answered = await asyncio.gather(*(reader.page(limit=20, offset=0, status=None) for _ in range(pages)))
    return [total for _, total in answered]


async def settle() -> None:
    for _ in range(5):  # a released recount ends within a few turns of the loop
        await asyncio.sleep(0)


async def test_an_old_total_is_counted_again_once_while_pages_go_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reads, "TOTAL_MAX_AGE_S", 3600)
    db = FakeReads(tasks=5)
    reader = TaskReader(db)
    assert await totals(reader, 1) == [5] and db.counts == 1
    assert await totals(reader, 10) == [5] * 10 and db.counts == 1  # fresh: not counted
    db.tasks = 7  # another process added two
    db.counting.clear()  # and counting takes a while
    monkeypatch.setattr(reads, "TOTAL_MAX_AGE_S", 0)  # the count is old
    assert await totals(reader, 50) == [5] * 50  # answered at once with the last count
    assert db.counts == 2  # one recount for all fifty
    monkeypatch.setattr(reads, "TOTAL_MAX_AGE_S", 3600)
    db.counting.set()
    await settle()
    assert await totals(reader, 3) == [7] * 3 and db.counts == 2


async def test_a_change_made_here_shows_at_once_and_an_older_recount_is_not_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reads, "TOTAL_MAX_AGE_S", 0)
    db = FakeReads(tasks=5)
    reader = TaskReader(db)
    await totals(reader, 1)
    db.counting.clear()
    await totals(reader, 1)  # the count is old: a recount starts, which will read 5
    monkeypatch.setattr(reads, "TOTAL_MAX_AGE_S", 3600)
    db.tasks = 6
    reader.forget_totals()  # this process added a task
    db.counting.set()
    assert await totals(reader, 1) == [6]
    await settle()  # the recount begun before has ended: its 5 is not kept
    assert await totals(reader, 1) == [6]


async def test_pages_after_a_change_here_share_one_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reads, "TOTAL_MAX_AGE_S", 3600)
    db = FakeReads(tasks=5)
    reader = TaskReader(db)
    await totals(reader, 1)
    db.tasks = 6
    reader.forget_totals()
    assert await totals(reader, 50) == [6] * 50 and db.counts == 2
