"""The speaker library: rows in the database, searched through per-process in-memory indexes.

Each process keeps one index per (encoder model, dimension), loaded from the database on first
use. A version token in Redis says when the library changed anywhere in the deployment: a
process that finds a token other than the one its indexes were built at reloads them. A process
that changes the library itself, and whose indexes were current just before, patches them in
place instead of reloading (a reload of 100,000 vectors takes a while; a patch does not).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import numpy as np
from advanced_alchemy.exceptions import RepositoryError
from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from advanced_alchemy.filters import LimitOffset, OrderBy
from redis.asyncio import Redis
from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm.exc import StaleDataError

from whisperx_api.db.models import Speaker
from whisperx_api.db.services import SpeakerService
from whisperx_api.media.storage import MediaStore
from whisperx_api.speaker_library.vectors import (
    KNOWN_DIMENSIONS,
    Entry,
    Hit,
    VectorIndex,
    check_dimension,
    from_bytes,
    to_bytes,
)

IndexKey = tuple[str, int]


@dataclass(frozen=True)
class NewSpeaker:
    label: str
    vector: np.ndarray  # normalised (vectors.prepare)
    encoder_model: str
    description: str | None = None
    task_id: UUID | None = None
    id: UUID | None = None  # None: a new one
    sample_path: str | None = None  # the enrolment recording, in the voice sample store


@dataclass(frozen=True)
class Comparison:
    """The index a query was compared against, and what the library holds besides."""

    index: VectorIndex
    encoder_model: str

    @property
    def compared(self) -> int:
        return len(self.index)


def as_bytes(value: bytes | str | None) -> bytes:
    return value.encode() if isinstance(value, str) else value or b""


class SpeakerLibrary:
    def __init__(self, db: SQLAlchemyAsyncConfig, redis: Redis, namespace: str, samples: MediaStore) -> None:
        self._db = db
        self._samples = samples  # voice samples go with their rows
        self._redis = redis
        self._version_key = f"{namespace}:speakers:version"
        self._version: bytes | None = None
        self._indexes: dict[IndexKey, VectorIndex] = {}
        self._lock = asyncio.Lock()
        self.loads = 0  # index loads from the database, for tests and benchmarks

    # -- rows -----------------------------------------------------------------------------
    async def get(self, speaker_id: UUID) -> Speaker | None:
        async with self._db.get_session() as session:
            return await SpeakerService(session=session).get_one_or_none(Speaker.id == speaker_id)

    async def by_ids(self, ids: list[UUID]) -> dict[UUID, Speaker]:
        """Rows of search hits; a row deleted since the index snapshot was taken is absent."""
        if not ids:
            return {}
        async with self._db.get_session() as session:
            rows = (await session.execute(select(Speaker).where(Speaker.id.in_(ids)))).scalars().all()
        return {row.id: row for row in rows}

    async def page(
        self, *, task_id: UUID | None, label: str | None, limit: int, offset: int
    ) -> tuple[Sequence[Speaker], int]:
        filters: list[ColumnElement[bool]] = []
        if task_id is not None:
            filters.append(Speaker.task_id == task_id)
        if label is not None:
            filters.append(Speaker.label == label)
        async with self._db.get_session() as session:
            return await SpeakerService(session=session).list_and_count(
                *filters, LimitOffset(limit=limit, offset=offset),
                OrderBy(field_name="created_at", sort_order="desc"), OrderBy(field_name="id", sort_order="desc"),
            )  # fmt: skip

    async def stored_dimension(self, encoder_model: str) -> int | None:
        async with self._db.get_session() as session:
            # every vector of one model has the same dimension (checked on the way in)
            query = select(Speaker.dimension).where(Speaker.encoder_model == encoder_model).limit(1)
            return (await session.execute(query)).scalar_one_or_none()

    async def check_dimension(self, encoder_model: str, dimension: int) -> None:
        stored = None if encoder_model in KNOWN_DIMENSIONS else await self.stored_dimension(encoder_model)
        check_dimension(encoder_model, dimension, stored)

    async def add(self, speakers: Sequence[NewSpeaker]) -> list[Speaker]:
        """Store speakers in one transaction (all or none)."""
        rows = [
            Speaker(
                id=s.id or uuid4(),
                sample_path=s.sample_path,
                label=s.label,
                description=s.description,
                task_id=s.task_id,
                encoder_model=s.encoder_model,
                dimension=int(s.vector.size),
                vector=to_bytes(s.vector),
            )
            for s in speakers
        ]
        async with self._db.get_session() as session:
            created = list(await SpeakerService(session=session).create_many(rows, auto_commit=True))

        def patch(indexes: dict[IndexKey, VectorIndex]) -> None:
            for row in created:
                key = (row.encoder_model, row.dimension)
                if key in indexes:
                    indexes[key] = indexes[key].with_added(
                        [Entry(row.id, row.label, row.task_id)], [from_bytes(row.vector)]
                    )

        await self._changed(patch)
        return created

    async def update(self, speaker_id: UUID, changes: dict[str, Any]) -> Speaker | None:
        """Apply `changes` (label, description, task_id, and/or vector with encoder_model)."""
        async with self._db.get_session() as session:
            service = SpeakerService(session=session)
            before = await service.get_one_or_none(Speaker.id == speaker_id)
            if before is None:
                return None
            old_key = (before.encoder_model, before.dimension)
            values = dict(changes)
            if "vector" in values:
                vector: np.ndarray = values.pop("vector")
                values["dimension"] = int(vector.size)
                values["vector"] = to_bytes(vector)
            try:
                after = await service.update(values, item_id=speaker_id, auto_commit=True)
            except RepositoryError as exc:
                if isinstance(exc.__cause__, StaleDataError):  # deleted since it was read
                    return None
                raise

        def patch(indexes: dict[IndexKey, VectorIndex]) -> None:
            new_key = (after.encoder_model, after.dimension)
            if "vector" in changes or new_key != old_key:
                if old_key in indexes:
                    indexes[old_key] = indexes[old_key].without({speaker_id})
                if new_key in indexes:
                    indexes[new_key] = (
                        indexes[new_key]
                        .without({speaker_id})
                        .with_added([Entry(after.id, after.label, after.task_id)], [from_bytes(after.vector)])
                    )
            elif new_key in indexes:
                indexes[new_key] = indexes[new_key].relabelled(speaker_id, after.label, after.task_id)

        await self._changed(patch)
        return after

    async def delete(self, speaker_id: UUID) -> bool:
        return bool(await self._delete_where(Speaker.id == speaker_id))

    async def delete_for_task(self, task_id: UUID) -> int:
        return await self._delete_where(Speaker.task_id == task_id)

    async def _delete_where(self, condition: ColumnElement[bool]) -> int:
        async with self._db.get_session() as session:
            gone = (
                await session.execute(delete(Speaker).where(condition).returning(Speaker.id, Speaker.sample_path))
            ).all()
            await session.commit()
        ids = {speaker_id for speaker_id, _ in gone}
        for _, sample in gone:
            self._samples.delete(sample)
        if ids:

            def patch(indexes: dict[IndexKey, VectorIndex]) -> None:
                for key, index in indexes.items():
                    indexes[key] = index.without(ids)

            await self._changed(patch)
        return len(ids)

    # -- search ---------------------------------------------------------------------------
    async def comparison(self, encoder_model: str, dimension: int) -> Comparison:
        return Comparison(await self._index((encoder_model, dimension)), encoder_model)

    async def search(
        self, query: np.ndarray, encoder_model: str, limit: int, threshold: float, exclude_task: UUID | None = None
    ) -> tuple[Comparison, list[Hit]]:
        comparison = await self.comparison(encoder_model, int(query.size))
        hits = await asyncio.to_thread(comparison.index.search, query, limit, threshold, exclude_task)
        return comparison, hits

    async def identify(
        self, query: np.ndarray, encoder_model: str, threshold: float, exclude_task: UUID | None = None, limit: int = 5
    ) -> tuple[Comparison, list[tuple[Hit, int]]]:
        comparison = await self.comparison(encoder_model, int(query.size))
        ranked = await asyncio.to_thread(comparison.index.best_by_label, query, threshold, exclude_task, limit)
        return comparison, ranked

    async def holdings(self) -> list[tuple[str, int, int]]:
        """(encoder model, dimension, count) of everything stored: what a query could be compared with."""
        async with self._db.get_session() as session:
            query = select(Speaker.encoder_model, Speaker.dimension, func.count()).group_by(
                Speaker.encoder_model, Speaker.dimension
            )
            return [(str(m), int(d), int(n)) for m, d, n in (await session.execute(query)).all()]

    # -- index cache ----------------------------------------------------------------------
    async def _current_version(self) -> bytes:
        version = await self._redis.get(self._version_key)
        if version is None:  # first use, or Redis lost its data: start a new version
            await self._redis.set(self._version_key, uuid4().hex, nx=True)
            version = await self._redis.get(self._version_key)
        return as_bytes(version)

    async def _index(self, key: IndexKey) -> VectorIndex:
        version = await self._current_version()
        if version == self._version and key in self._indexes:
            return self._indexes[key]
        async with self._lock:
            version = await self._current_version()
            if version != self._version:
                self._indexes.clear()
                self._version = version
            if key not in self._indexes:
                self._indexes[key] = await self._load(key)
            return self._indexes[key]

    async def _load(self, key: IndexKey) -> VectorIndex:
        encoder_model, dimension = key
        self.loads += 1
        query = select(Speaker.id, Speaker.label, Speaker.task_id, Speaker.vector).where(
            Speaker.encoder_model == encoder_model, Speaker.dimension == dimension
        )
        async with self._db.get_session() as session:
            rows = (await session.execute(query)).tuples().all()
        return await asyncio.to_thread(VectorIndex.from_rows, dimension, rows)

    async def _changed(self, patch: Callable[[dict[IndexKey, VectorIndex]], None]) -> None:
        """Publish a new library version; patch this process's indexes if they were current."""
        new = uuid4().hex.encode()
        async with self._lock:
            previous = await self._redis.set(self._version_key, new, get=True)
            if isinstance(previous, bytes | str) and as_bytes(previous) == self._version:
                indexes = dict(self._indexes)
                await asyncio.to_thread(patch, indexes)
                self._indexes = indexes
                self._version = new
            else:
                self._indexes.clear()
                self._version = None
