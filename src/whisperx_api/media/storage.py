"""Where a task's media lives until its task ends (and, in a second store, kept voice samples).

Kept behind this small class so a shared volume (several worker hosts) is only a path change.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import BinaryIO
from uuid import UUID

COPY_CHUNK = 1024 * 1024


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path_for(self, task_id: UUID, suffix: str) -> Path:
        return self.root / f"{task_id}{suffix.lower()}"

    def _copy(self, source: BinaryIO, target: Path) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        source.seek(0)
        try:
            with target.open("wb") as out:
                shutil.copyfileobj(source, out, COPY_CHUNK)
                return out.tell()
        except BaseException:  # disk full, a client gone: no partial file stays behind
            target.unlink(missing_ok=True)
            raise

    async def save(self, source: BinaryIO, task_id: UUID, suffix: str) -> tuple[Path, int]:
        """Copy an uploaded (spooled) file into the store in a thread; returns path and size."""
        target = self.path_for(task_id, suffix)
        size = await asyncio.to_thread(self._copy, source, target)
        return target, size

    def adopt(self, path: str | Path, key: UUID) -> Path:
        """Move a file (from another store on the same volume) into this one, under `key`."""
        source = Path(path)
        target = self.path_for(key, source.suffix)
        self.root.mkdir(parents=True, exist_ok=True)
        source.replace(target)
        return target

    def delete(self, path: str | Path | None) -> None:
        if not path:
            return
        candidate = Path(path).resolve()
        # never delete outside the store, whatever a row says
        if candidate.is_relative_to(self.root):
            candidate.unlink(missing_ok=True)
