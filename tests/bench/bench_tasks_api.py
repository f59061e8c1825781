"""Read throughput of the task API under 200 concurrent connections (wrk), SQLite vs PostgreSQL.

uv run python tests/bench/bench_tasks_api.py [--seconds 20] [--connections 200] [--web-workers 1] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

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
SEED_TASKS = 2000


async def seed(db_url: str, data_dir: Path) -> str:
    settings = make_settings(data_dir, db_url)
    await asyncio.to_thread(upgrade_database, settings)
    config = make_db_config(settings, null_pool=True)
    first = None
    async with config.get_session() as session:
        for i in range(SEED_TASKS):
            task = Task(
                id=uuid.uuid4(), status=("completed", "failed")[i % 2], task_type="full_process",
                params={"options": {"whisper": {"model": "base"}}}, progress=1.0, attempts=1, file_name=f"f{i}.mp3",
                result={"segments": [{"start": 0.0, "end": 2.0, "text": "hello world", "speaker": "SPEAKER_00"}] * 5},
            )  # fmt: skip
            session.add(task)
            first = first or task.id
        await session.commit()
    await config.get_engine().dispose()
    return str(first)


def wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": ms("50"), "p99_ms": ms("99"), "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else ""}  # type: ignore[dict-item]  # fmt: skip


def run_one(kind: str, db_url: str, args: argparse.Namespace, workdir: Path) -> list[dict[str, object]]:
    workdir.mkdir(parents=True, exist_ok=True)
    first = asyncio.run(seed(db_url, workdir / "data"))
    settings = make_settings(workdir / "data", db_url)
    env = {**settings_env(settings), "LOG_LEVEL": "WARNING", "WORKER_IN_PROCESS": "true"}
    port = free_port()
    server = start_server(env, workdir / f"{kind}.log", port, web_workers=args.web_workers, worker_ready=True)
    rows = []
    try:
        for name, path in (("GET /task/{id}", f"/task/{first}"), ("GET /task/all?limit=20", "/task/all?limit=20")):
            wrk(f"http://127.0.0.1:{port}{path}", 2, 20)  # warm-up
            figures = wrk(f"http://127.0.0.1:{port}{path}", args.seconds, args.connections)
            rows.append({"database": kind, "endpoint": name, **figures})
            print(
                f"{kind:10} {name:24} {figures['rps']:9.0f} req/s  p50 {figures['p50_ms']:7.1f} ms  p99 {figures['p99_ms']:7.1f} ms  non-2xx {figures['non_2xx']}",
                flush=True,
            )
    finally:
        server.stop()
        clear_queue(settings.queue_name)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--web-workers", type=int, default=1)
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        databases = args.databases.split(",")
        if "sqlite" in databases:
            rows += run_one("sqlite", f"sqlite:///{workdir / 'records.db'}", args, workdir / "sqlite")
        if "postgresql" in databases:
            name = asyncio.run(create_pg_database())
            try:
                rows += run_one("postgresql", pg_url(name), args, workdir / "pg")
            finally:
                asyncio.run(drop_pg_database(name))
    RESULTS.mkdir(exist_ok=True)
    report = {"date": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(), "args": vars(args), "rows": rows}
    (RESULTS / f"tasks_api_{int(time.time())}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
