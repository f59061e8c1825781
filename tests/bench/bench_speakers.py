"""Speaker identification latency as the library grows: 1,000 / 10,000 / 100,000 stored 256-dim
vectors, on SQLite and on PostgreSQL, against a running `whisperx-api run` over HTTP.

For each size: the first identify after a start (the index loads from the database), then p50/p95
of sequential POST /speakers/identify and /speakers/search requests (each query is a stored
person's vector plus noise, so identification has a true answer to find, and it is checked), and
p50 of POST /speakers followed by an identify (the writing process patches its index, no reload).

uv run python tests/bench/bench_speakers.py [--sizes 1000,10000,100000] [--requests 200]
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
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import insert

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
from whisperx_api.db.models import Speaker
from whisperx_api.pipeline.encoders import EMBEDDED_MODEL
from whisperx_api.speaker_library.vectors import to_bytes

RESULTS = Path(__file__).parent / "results"
DIM = 256
SAMPLES_PER_PERSON = 5
BATCH = 5000


def person_vectors(rng: np.random.Generator, start: int, count: int, centres: np.ndarray) -> np.ndarray:
    """Vectors of persons `i // SAMPLES_PER_PERSON`: the person's centre plus per-sample noise."""
    people = np.arange(start, start + count) // SAMPLES_PER_PERSON
    vectors = centres[people] + rng.normal(0, 0.25 / np.sqrt(DIM), size=(count, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


async def fill(db_url: str, data_dir: Path, have: int, want: int, centres: np.ndarray) -> None:
    settings = make_settings(data_dir, db_url)
    config = make_db_config(settings, null_pool=True)
    rng = np.random.default_rng(have)
    async with config.get_session() as session:
        for start in range(have, want, BATCH):
            count = min(BATCH, want - start)
            vectors = person_vectors(rng, start, count, centres)
            await session.execute(
                insert(Speaker),
                [
                    {
                        "id": uuid.uuid4(),
                        "label": f"person-{(start + i) // SAMPLES_PER_PERSON}",
                        "encoder_model": EMBEDDED_MODEL,
                        "dimension": DIM,
                        "vector": to_bytes(vectors[i]),
                    }
                    for i in range(count)
                ],
            )
        await session.commit()
    await config.get_engine().dispose()


def timed(client: httpx.Client, path: str, body: dict[str, object]) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.post(path, json=body)
    return (time.perf_counter() - started) * 1000, response


def measure(port: int, size: int, requests: int, centres: np.ndarray) -> dict[str, float]:
    rng = np.random.default_rng(12345)
    people = size // SAMPLES_PER_PERSON
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        cold, response = timed(client, "/speakers/identify", {"embedding": centres[0].tolist()})
        assert response.status_code == 200, response.text
        identify, search = [], []
        wrong = 0
        for _ in range(requests):
            person = int(rng.integers(people))
            query = centres[person] + rng.normal(0, 0.25 / np.sqrt(DIM), size=DIM)
            ms, response = timed(client, "/speakers/identify", {"embedding": query.tolist()})
            assert response.status_code == 200, response.text
            wrong += response.json()["speaker_label"] != f"person-{person}"
            identify.append(ms)
            ms, response = timed(client, "/speakers/search", {"embedding": query.tolist(), "limit": 5})
            assert response.status_code == 200 and response.json()["results"], response.text
            search.append(ms)
        after_write = []
        created = []
        for i in range(20):
            vector = rng.normal(size=DIM)
            write_ms, response = timed(
                client, "/speakers", {"speaker_label": f"bench-{i}", "embedding": vector.tolist()}
            )
            assert response.status_code == 201, response.text
            created.append(response.json()["id"])
            ms, response = timed(client, "/speakers/identify", {"embedding": vector.tolist()})
            assert response.status_code == 200 and response.json()["speaker_label"] == f"bench-{i}", response.text
            after_write.append(write_ms + ms)
        for speaker_id in created:  # leave the library at `size` for the next round
            client.delete(f"/speakers/{speaker_id}")

    def pct(values: list[float], q: int) -> float:
        return round(statistics.quantiles(values, n=100)[q - 1], 2)

    return {
        "stored": size, "first_identify_ms": round(cold, 1), "identify_p50_ms": pct(identify, 50),
        "identify_p95_ms": pct(identify, 95), "search_p50_ms": pct(search, 50), "search_p95_ms": pct(search, 95),
        "write_then_identify_p50_ms": round(statistics.median(after_write), 2), "misidentified": wrong,
    }  # fmt: skip


def run_db(kind: str, db_url: str, args: argparse.Namespace, workdir: Path, centres: np.ndarray) -> list[dict]:
    workdir.mkdir(parents=True, exist_ok=True)
    settings = make_settings(workdir / "data", db_url)
    upgrade_database(settings)
    env = {**settings_env(settings), "LOG_LEVEL": "WARNING"}
    rows = []
    have = 0
    try:
        for size in args.sizes:
            started = time.perf_counter()
            asyncio.run(fill(db_url, workdir / "data", have, size, centres))
            have = size
            fill_s = time.perf_counter() - started
            port = free_port()  # a fresh server per size, so the first identify loads the whole index
            server = start_server(env, workdir / f"{kind}-{size}.log", port)
            try:
                row = {"database": kind, **measure(port, size, args.requests, centres), "fill_s": round(fill_s, 1)}
            finally:
                server.stop()
            rows.append(row)
            print(
                f"{kind:10} {size:7d} stored  identify p50 {row['identify_p50_ms']:6.2f} ms  "
                f"p95 {row['identify_p95_ms']:6.2f}  search p50 {row['search_p50_ms']:6.2f}  "
                f"first {row['first_identify_ms']:7.1f} ms  write+identify {row['write_then_identify_p50_ms']:6.2f} ms  "
                f"wrong {row['misidentified']}",
                flush=True,
            )
    finally:
        clear_queue(settings.queue_name)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1000, 10000, 100000])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(max(args.sizes) // SAMPLES_PER_PERSON + 1, DIM))
    centres = (centres / np.linalg.norm(centres, axis=1, keepdims=True)).astype(np.float32)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows += run_db("sqlite", f"sqlite:///{workdir / 'records.db'}", args, workdir / "sqlite", centres)
        name = asyncio.run(create_pg_database())
        try:
            rows += run_db("postgresql", pg_url(name), args, workdir / "pg", centres)
        finally:
            asyncio.run(drop_pg_database(name))
    RESULTS.mkdir(exist_ok=True)
    report = {"date": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(), "args": vars(args), "rows": rows}
    (RESULTS / f"speakers_{int(time.time())}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
