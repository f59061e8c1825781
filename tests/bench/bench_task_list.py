"""The task list with many stored tasks (default 1,000,000): GET /task/all?limit=20 at offset 0,
1,000 (the deepest page read on the event loop, tasks/reads.py SHALLOW_OFFSET) and 10,000, and
at the depth 10,000 through `cursor`, on SQLite and PostgreSQL.

uv run python tests/bench/bench_task_list.py [--tasks 1000000] [--database sqlite|postgresql|both]

Prints the median and worst of 20 sequential requests per case, and wrk's req/s for the first page.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.bench_tasks_api import wrk
from tests.support import (
    clear_queue,
    create_pg_database,
    drop_pg_database,
    free_port,
    make_settings,
    pg_url,
    settings_env,
    start_server,
)
from whisperx_api.db.config import make_db_config, upgrade_database
from whisperx_api.db.models import Task

RESULTS = Path(__file__).parent / "results"
BATCH = 20_000


async def seed(db_url: str, data_dir: Path, count: int) -> None:
    """`count` finished tasks, one a second apart, in bulk inserts."""
    settings = make_settings(data_dir, db_url)
    await asyncio.to_thread(upgrade_database, settings)
    config = make_db_config(settings, null_pool=True)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    async with config.get_session() as session:
        for first in range(0, count, BATCH):
            rows = [
                {
                    "id": uuid.uuid4(),
                    "status": ("completed", "failed")[i % 7 == 0],
                    "task_type": "full_process",
                    "params": {},
                    "progress": 1.0,
                    "attempts": 1,
                    "file_name": f"f{i}.mp3",
                    "created_at": start + timedelta(seconds=i),
                    "updated_at": start + timedelta(seconds=i),
                }
                for i in range(first, min(count, first + BATCH))
            ]
            await session.execute(insert(Task), rows)
            await session.commit()
    await config.get_engine().dispose()


def timed(client: httpx.Client, path: str, params: dict[str, object]) -> tuple[float, float]:
    times = []
    for _ in range(20):
        began = time.perf_counter()
        response = client.get(path, params=params)
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, response.text
    return statistics.median(times), max(times)


def cursor_at(client: httpx.Client, depth: int) -> str:
    cursor = None
    for _ in range(depth // 1000):
        page = client.get("/task/all", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
        cursor = page["next_cursor"]
    assert cursor is not None
    return cursor


def run_one(kind: str, db_url: str, count: int, workdir: Path) -> list[dict[str, object]]:
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    asyncio.run(seed(db_url, workdir / "data", count))
    print(f"{kind}: {count} tasks stored in {time.perf_counter() - began:.0f} s", flush=True)
    settings = make_settings(workdir / "data", db_url)
    env = {**settings_env(settings), "LOG_LEVEL": "WARNING", "WORKER_IN_PROCESS": "false"}
    port = free_port()
    server = start_server(env, workdir / f"{kind}.log", port, timeout=180)
    rows: list[dict[str, object]] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            cases = {
                "limit=20": {"limit": 20},
                "limit=20&offset=1000": {"limit": 20, "offset": 1_000},
                "limit=20&offset=10000": {"limit": 20, "offset": 10_000},
                "limit=20&cursor (depth 10000)": {"limit": 20, "cursor": cursor_at(client, 10_000)},
                "limit=20&status=failed": {"limit": 20, "status": "failed"},
            }
            for name, params in cases.items():
                median, worst = timed(client, "/task/all", params)
                rows.append({"database": kind, "case": name, "median_ms": round(median, 1), "max_ms": round(worst, 1)})
                print(f"{kind:10} {name:32} median {median:7.1f} ms  max {worst:7.1f} ms", flush=True)
        figures = wrk(f"http://127.0.0.1:{port}/task/all?limit=20", 10, 50)
        rows.append({"database": kind, "case": "limit=20 under load (wrk, 50 connections)", **figures})
        print(f"{kind:10} {'limit=20, 50 connections':32} {figures['rps']:7.0f} req/s  p99 {figures['p99_ms']:.0f} ms")
    finally:
        server.stop()
        clear_queue(settings.queue_name)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.database in ("sqlite", "both"):
            rows += run_one("sqlite", f"sqlite:///{workdir / 'records.db'}", args.tasks, workdir / "sqlite")
        if args.database in ("postgresql", "both"):
            name = asyncio.run(create_pg_database())
            try:
                rows += run_one("postgresql", pg_url(name), args.tasks, workdir / "pg")
            finally:
                asyncio.run(drop_pg_database(name))
    RESULTS.mkdir(exist_ok=True)
    report = {"date": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(), "args": vars(args), "rows": rows}
    (RESULTS / f"task_list_{int(time.time())}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
