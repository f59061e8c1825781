"""Fault injection: the service heals itself when Redis, the database or the disk fail under it.

Real processes throughout: `whisperx-api run`, redis-servers of the tests' own (or the embedded
one), throw-away PostgreSQL databases made unreachable (ALLOW_CONNECTIONS false, connections
terminated), and a small tmpfs for a full disk. Each test prints `RECOVERY <fault> <seconds>`,
the figures README's reliability section reports."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import openai
import pytest
import redis

from tests.audio import concatenate, speak
from tests.support import (
    PG_ADMIN_DSN,
    Process,
    RedisServer,
    clear_queue,
    free_port,
    make_settings,
    settings_env,
    start_server,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.models]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    sentence = speak("The service heals itself when something it needs fails under it.", root / "s.wav")
    return {"long": concatenate([sentence] * 40, root / "long.wav"), "short": sentence}


def submit(http: httpx.Client, clip: Path) -> str:
    response = http.post(
        "/service/transcribe", files={"file": (clip.name, clip.read_bytes())}, data={"model": "tiny.en"}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["identifier"])


def status(http: httpx.Client, identifier: str) -> dict[str, Any]:
    return dict(http.get(f"/task/{identifier}").json())


def start_long_task(http: httpx.Client, clip: Path, log: Path) -> str:
    """The long clip submitted, and its VAD or transcription under way."""
    identifier = submit(http, clip)
    wait_until(lambda: status(http, identifier)["stage"] in ("vad", "transcribing"), 120, log=log)
    return identifier


def assert_completed_on_its_first_run(http: httpx.Client, identifier: str, log: Path) -> None:
    """Its transcript whole, run once: never taken for dead by the sweep nor retried."""
    task = status(http, identifier)
    assert task["status"] == "completed", task
    assert "something it needs" in " ".join(s["text"] for s in task["result"]["segments"]).lower()
    assert task["metadata"]["attempts"] == 1 and runs(log) == {identifier: 1}
    assert "Sweeping job" not in log.read_text()


def runs(*logs: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for log in logs:
        for task_id in re.findall(r"task ([0-9a-f-]{36}) \([a-z_]+\): running", log.read_text(errors="replace")):
            counts[task_id] = counts.get(task_id, 0) + 1
    return counts


async def drop_connections(admin: asyncpg.Connection, database: str) -> None:
    """Every connection to the database ended by the server, as a restart would."""
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        database,
    )


def recovery(fault: str, seconds: float) -> None:
    print(f"RECOVERY {fault} {seconds:.1f}")


def test_the_embedded_redis_is_restarted_and_the_queue_goes_on(tmp_path: Path, clips: dict[str, Path]) -> None:
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'records.db'}")
    env = {**settings_env(settings), "REDIS_URL": "", "EMBEDDED_REDIS_RESTART_TIMEOUT_S": "4"}
    port = free_port()
    log = tmp_path / "server.log"
    server = start_server(env, log, port, timeout=120, worker_ready=True)
    pidfile = tmp_path / "data" / "redis" / "redis.pid"
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            running = submit(http, clips["long"])
            wait_until(lambda: status(http, running)["status"] == "processing", 120)
            queued = [submit(http, clips["short"]) for _ in range(3)]
            time.sleep(1.5)  # appendfsync everysec: let the queue reach the disk
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
            killed = time.monotonic()
            wait_until(lambda: http.get("/health/ready").status_code == 200, 30)
            recovery("embedded-redis-killed:ready", time.monotonic() - killed)
            for identifier in [running, *queued]:
                wait_until(lambda i=identifier: status(http, i)["status"] in ("completed", "failed"), 180)
                assert status(http, identifier)["status"] == "completed", status(http, identifier)
            recovery("embedded-redis-killed:all-completed", time.monotonic() - killed)
            assert http.get("/health/live").status_code == 200
            assert runs(log) == dict.fromkeys([running, *queued], 1), runs(log)  # none twice
            assert "embedded Redis is back" in log.read_text()

            # a Redis that cannot come back (its append-only file ruined): not alive, so an
            # orchestrator restarts the whole service
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
            for path in (tmp_path / "data" / "redis").rglob("*.aof"):
                path.write_bytes(b"*garbage that is no Redis command\r\n" * 10)
            took = wait_until(lambda: http.get("/health/live").status_code == 503, 30)
            recovery("embedded-redis-lost:liveness-503", took)
            assert http.get("/health/live").json()["error"]["code"] == "EMBEDDED_REDIS_LOST"
    finally:
        server.stop()


def test_redis_down_while_the_worker_starts(tmp_path: Path, clips: dict[str, Path]) -> None:
    store = RedisServer(tmp_path / "redis").start()
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'records.db'}", redis_url=store.url)
    env = {**settings_env(settings), "REDIS_URL": store.url}
    port = free_port()
    log = tmp_path / "server.log"
    server = start_server(env, log, port, timeout=120)  # ready before its worker is (it warms up)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            queued = [submit(http, clips["short"]) for _ in range(3)]
            assert http.get("/health/ready").json()["worker"] == "starting"
            store.stop()  # down for 20 s, from the worker's first seconds
            down = time.monotonic()
            wait_until(lambda: http.get("/health/ready").status_code == 503, 10)
            refused = http.post("/service/probe", files={"file": ("s.wav", clips["short"].read_bytes())})
            assert refused.status_code == 503 and refused.json()["error"]["param"] == "redis", refused.text
            # the worker meets the outage once its warm-up (seconds, longer on a loaded machine) ends
            wait_until(lambda: "the queue worker cannot start: redis is unavailable" in log.read_text(), 90)
            time.sleep(max(0.0, 20 - (time.monotonic() - down)))
            store.start()
            back = time.monotonic()
            for identifier in queued:
                wait_until(lambda i=identifier: status(http, i)["status"] in ("completed", "failed"), 180)
                assert status(http, identifier)["status"] == "completed", status(http, identifier)
            recovery("redis-down-at-worker-start:all-completed", time.monotonic() - back)
            assert http.get("/health/ready").json()["worker"] == "ok"
    finally:
        server.stop()
        store.kill()


async def test_submissions_while_a_dependency_is_down_leave_nothing_behind(
    tmp_path: Path, clips: dict[str, Path], pg_database: str
) -> None:
    name = pg_database.rsplit("/", 1)[-1]
    store = RedisServer(tmp_path / "redis").start()
    settings = make_settings(tmp_path / "data", pg_database, redis_url=store.url, max_queued_gpu_requests=4)
    env = {
        **settings_env(settings),
        "REDIS_URL": store.url,
        "MAX_QUEUED_GPU_REQUESTS": "4",
        "WORKER_IN_PROCESS": "false",
    }
    port = free_port()
    server = start_server(env, tmp_path / "server.log", port, timeout=120)
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    media = tmp_path / "data" / "media"
    upload = {"files": {"file": ("s.wav", clips["short"].read_bytes())}}

    async def rows() -> int:
        conn = await asyncpg.connect(pg_database)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM task"))
        finally:
            await conn.close()

    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            # Redis down: nothing reaches the database, the disk or the queue
            store.kill()
            for path in ("/service/transcribe", "/speech-to-text"):
                response = await http.post(path, **upload)
                error = response.json()["error"]
                assert response.status_code == 503 and (error["code"], error["param"]) == (
                    "DEPENDENCY_UNAVAILABLE",
                    "redis",
                )
                assert int(response.headers["retry-after"]) > 0
            sdk = openai.OpenAI(api_key="x", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
            with pytest.raises(openai.InternalServerError) as refused:
                sdk.audio.transcriptions.create(model="whisper-1", file=clips["short"].open("rb"))
            assert refused.value.status_code == 503
            assert await rows() == 0 and not list(media.glob("*"))
            store.start()
            back = time.monotonic()
            accepted = await http.post("/service/transcribe", **upload)
            assert accepted.status_code == 200, accepted.text
            recovery("redis-down-at-submission:accepting", time.monotonic() - back)

            # the database down: the slot and the upload are given back
            # (a read first, so the reads' pool holds a connection the outage will kill)
            assert (await http.get("/task/all")).status_code == 200
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await drop_connections(admin, name)
            response = await http.post("/service/transcribe", **upload)
            error = response.json()["error"]
            assert response.status_code == 503 and (error["code"], error["param"]) == (
                "DEPENDENCY_UNAVAILABLE",
                "database",
            )
            assert redis.Redis.from_url(store.url).zcard(f"{settings.queue_name}:admission:async") == 1  # the first
            assert len(list(media.glob("*"))) == 1 and len(redis.Redis.from_url(store.url).lrange(
                f"saq:{settings.queue_name}:queued", 0, -1)) == 1  # fmt: skip
            listing = await http.get("/task/all")
            assert listing.status_code == 503 and listing.json()["error"]["param"] == "database"
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            assert (await http.get("/task/all")).status_code == 200
            # a database restart between two reads (every connection dropped, none refused):
            # the next read is answered, not failed on its pooled connection
            await drop_connections(admin, name)
            listing = await http.get("/task/all")
            assert listing.status_code == 200 and listing.json()["total"] == 1, listing.text
            back = time.monotonic()
            again = await http.post("/service/transcribe", **upload)
            assert again.status_code == 200, again.text
            recovery("database-down-at-submission:accepting", time.monotonic() - back)
            assert await rows() == 2
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
        server.stop()
        store.kill()
        clear_queue(settings.queue_name)


async def test_a_finished_task_waits_for_the_database_to_record_its_result(
    tmp_path: Path, clips: dict[str, Path], pg_database: str
) -> None:
    name = pg_database.rsplit("/", 1)[-1]
    settings = make_settings(tmp_path / "data", pg_database)
    port = free_port()
    log = tmp_path / "server.log"
    server = start_server(settings_env(settings), log, port, timeout=120, worker_ready=True)
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            identifier = start_long_task(http, clips["long"], log)
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await drop_connections(admin, name)
            # however long the work goes on without its progress rows (many heartbeats on a slow
            # machine), the job stays alive: the sweep once took it for dead and threw the work away
            wait_until(lambda: "unavailable for its final state" in log.read_text(), 240, log=log)
            time.sleep(3)  # the pipeline is done; its result waits for the database
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            back = time.monotonic()
            wait_until(lambda: status(http, identifier)["status"] == "completed", 60, log=log)
            recovery("database-down-at-final-write:completed", time.monotonic() - back)
            assert_completed_on_its_first_run(http, identifier, log)
            # the work's later progress writes (its next stages) failed too: said once, not each second
            assert log.read_text().count("progress not recorded") == 1
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
        server.stop()
        clear_queue(settings.queue_name)


async def test_a_database_that_hangs_under_a_running_task_does_not_stop_its_heartbeat(
    tmp_path: Path, clips: dict[str, Path], pg_database: str
) -> None:
    """The task's row locked (as a database that hangs, not one that refuses, leaves every write
    waiting) for five heartbeats while the work runs: its progress writes hang, its job is still
    touched, so the sweep leaves it alone; once the lock goes the task completes on its first run."""
    settings = make_settings(tmp_path / "data", pg_database)
    port = free_port()
    log = tmp_path / "server.log"
    server = start_server(settings_env(settings), log, port, timeout=120, worker_ready=True)
    admin = await asyncpg.connect(pg_database)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            identifier = start_long_task(http, clips["long"], log)
            locked = admin.transaction()
            await locked.start()
            await admin.execute("SELECT id FROM task WHERE id = $1 FOR UPDATE", UUID(identifier))
            waiting = (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            deadline = time.monotonic() + 120
            # the test's own event loop sleeps between the polls: the lock's connection stays served
            while await admin.fetchval(waiting) == 0:  # the next progress write (or the final one)
                assert time.monotonic() < deadline, "no write of the service waited on the locked row"
                await asyncio.sleep(0.2)
            held = 5 * settings.job_heartbeat_s
            await asyncio.sleep(held)
            blocked = await admin.fetchval(waiting)
            await locked.rollback()
            wait_until(lambda: status(http, identifier)["status"] == "completed", 120, log=log)
            assert_completed_on_its_first_run(http, identifier, log)
            print(f"writes left waiting on the lock: {blocked} (held {held}s)")
    finally:
        await admin.close()
        server.stop()
        clear_queue(settings.queue_name)


async def test_a_job_taken_while_the_database_is_down_waits_for_it(
    tmp_path: Path, clips: dict[str, Path], pg_database: str
) -> None:
    """A worker takes a queued job while the database refuses connections: the job waits for it
    (touched meanwhile) and runs once it is back, on its first attempt. It used to fail at once,
    SAQ spent every retry in milliseconds and the task sat queued until the next reconcile."""
    name = pg_database.rsplit("/", 1)[-1]
    settings = make_settings(tmp_path / "data", pg_database)
    env = settings_env(settings)
    worker_log = tmp_path / "worker.log"
    port = free_port()
    web = start_server({**env, "WORKER_IN_PROCESS": "false"}, tmp_path / "web.log", port, timeout=120)
    worker = Process(["workers", "run"], env, worker_log)
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        wait_until(lambda: "Worker starting" in worker_log.read_text(errors="replace"), 180, log=worker_log)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            os.kill(worker.proc.pid, signal.SIGSTOP)  # it takes the job only once the database is down
            try:
                identifier = submit(http, clips["short"])
                await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                await drop_connections(admin, name)
            finally:
                os.kill(worker.proc.pid, signal.SIGCONT)
            wait_until(lambda: "unavailable for its start" in worker_log.read_text(), 60, log=worker_log)
            time.sleep(3 * settings.job_heartbeat_s)  # longer than its heartbeat: not taken for dead
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            back = time.monotonic()
            wait_until(lambda: status(http, identifier)["status"] == "completed", 60, log=worker_log)
            recovery("database-down-at-job-start:completed", time.monotonic() - back)
            assert status(http, identifier)["metadata"]["attempts"] == 1 and runs(worker_log) == {identifier: 1}
            text = worker_log.read_text()
            assert "Error processing job" not in text and "Sweeping job" not in text
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
        web.stop()
        worker.stop()
        clear_queue(settings.queue_name)


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if made.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_refuses_the_upload_keeps_nothing_and_recovers(
    tmp_path: Path, clips: dict[str, Path], small_disk: Path
) -> None:
    settings = make_settings(small_disk, f"sqlite:///{tmp_path / 'records.db'}")  # media on a 3 MB tmpfs
    port = free_port()
    server = start_server(settings_env(settings), tmp_path / "server.log", port, timeout=120, worker_ready=True)
    big = concatenate([clips["long"]] * 2, tmp_path / "big.wav")  # ~5 MB
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            response = http.post("/service/transcribe", files={"file": ("big.wav", big.read_bytes())})
            error = response.json()["error"]
            assert response.status_code == 507 and error["code"] == "INSUFFICIENT_STORAGE", response.text
            assert not list((small_disk / "media").glob("*"))  # no partial file
            assert http.get("/task/all").json()["total"] == 0
            # a smaller file fits
            identifier = submit(http, clips["short"])
            wait_until(lambda: status(http, identifier)["status"] == "completed", 120)
    finally:
        server.stop()
        clear_queue(settings.queue_name)


def test_a_worker_only_process_waits_for_redis_too(tmp_path: Path, clips: dict[str, Path]) -> None:
    """`workers run` retries its start the same way as the in-process worker."""
    store = RedisServer(tmp_path / "redis")
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'records.db'}", redis_url=store.url)
    env = {**settings_env(settings), "REDIS_URL": store.url}
    worker = Process(["workers", "run"], env, tmp_path / "worker.log")  # Redis not there yet
    try:
        time.sleep(5)
        assert worker.proc.poll() is None, worker.log_text()[-2000:]
        store.start()
        port = free_port()
        web = start_server({**env, "WORKER_IN_PROCESS": "false"}, tmp_path / "web.log", port, timeout=120)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                identifier = submit(http, clips["short"])
                wait_until(lambda: status(http, identifier)["status"] == "completed", 180)
        finally:
            web.stop()
    finally:
        worker.stop()
        store.kill()
