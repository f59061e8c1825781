"""Shared test helpers: settings, databases, polling, real server processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis

from whisperx_api.memory import (
    GPU_ONLY_LIBRARIES,
    droppable_file_mappings,
    loaded_libraries,
    mappings,
    zero_filled_ranges,
)
from whisperx_api.settings import Settings

REPO = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_HOST = os.environ.get("TEST_PG_HOST", "127.0.0.1")
PG_USER = os.environ.get("TEST_PG_USER", "postgres")
PG_ADMIN_DSN = f"postgresql://{PG_USER}@{PG_HOST}:5432/postgres"
BIN = Path(sys.executable).parent / "whisperx-api"


def make_settings(data_dir: Path, db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "db_url": db_url,
        "redis_url": REDIS_URL,
        "queue_name": f"test-{uuid.uuid4().hex[:12]}",
        "job_heartbeat_s": 2,
        "shutdown_grace_s": 0,
        "whisper_model": "tiny.en",
        "device": "cpu",
        "compute_type": "int8",
        # one inference process per service through a test, so the model loads a test counts
        # hold; the replacement has its own test (test_engine_process.py)
        "inference_recycle_growth_mb": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def make_bench_settings(data_dir: Path, db_url: str, **overrides: Any) -> Settings:
    """make_settings with the deployment's replacement of a grown inference process, which the
    tests turn off: a benchmark measures what a deployment runs."""
    recycle = Settings.model_fields["inference_recycle_growth_mb"].default
    return make_settings(data_dir, db_url, **{"inference_recycle_growth_mb": recycle, **overrides})


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as environment variables, for a server started in a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "REDIS_", "QUEUE_", "WORKER_"))}
    env.update(
        DATA_DIR=str(settings.data_dir),
        DB_URL=settings.db_url,
        REDIS_URL=settings.redis_url or "",
        QUEUE_NAME=settings.queue_name,
        JOB_HEARTBEAT_S=str(settings.job_heartbeat_s),
        SHUTDOWN_GRACE_S=str(settings.shutdown_grace_s),
        WHISPER_MODEL=settings.whisper_model,
        DEVICE=settings.device,
        COMPUTE_TYPE=settings.compute_type,
        INFERENCE_RECYCLE_GROWTH_MB=str(settings.inference_recycle_growth_mb),
        LOG_LEVEL="INFO",
    )
    return env


async def create_pg_database() -> str:
    name = f"wx_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def pg_url(name: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:5432/{name}"


def clear_queue(queue_name: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = [
        *client.scan_iter(f"saq:{queue_name}:*"), *client.scan_iter(f"saq:job:{queue_name}:*"),
        *client.scan_iter(f"{queue_name}:*"),
    ]  # fmt: skip
    if keys:
        client.delete(*keys)


async def wait_for_status(
    client: httpx.AsyncClient, identifier: str, statuses: set[str], timeout: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await client.get(f"/task/{identifier}")
        body = response.json()
        if body.get("status") in statuses:
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"task {identifier} did not reach {statuses} in {timeout}s; last: {body}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A real `whisperx-api` process (server or worker) with its log captured to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._log_file = log.open("ab")
        # its own process group, so a kill reaches granian's worker processes too
        self.proc = subprocess.Popen(
            [str(BIN), *args], env=env, stdout=self._log_file, stderr=subprocess.STDOUT, cwd=REPO,
            start_new_session=True,
        )  # fmt: skip

    def kill(self) -> None:
        """A hard crash of the whole service (supervisor and workers), as a power cut would be."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log_file.close()

    def stop(self, timeout: float = 20, *, ctrl_c: bool = False, group_term: bool = False) -> None:
        """SIGTERM to the server (as a supervisor stops it); with ctrl_c SIGINT to its whole
        process group, as Ctrl-C in a terminal does; with group_term SIGTERM to the whole group,
        as systemd stops a service by default (KillMode=control-group) and `kill -- -PGID` does."""
        if self.proc.poll() is None:
            if ctrl_c or group_term:
                os.killpg(self.proc.pid, signal.SIGINT if ctrl_c else signal.SIGTERM)
            else:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log_file.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (granian's workers, their inference processes, ...)."""
    children: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError, StopIteration):
            ppid = int(next(line.split()[1] for line in status.read_text().splitlines() if line.startswith("PPid:")))
            children.setdefault(ppid, []).append(int(status.parent.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def start_server(
    env: dict[str, str], log: Path, port: int, timeout: float = 60, web_workers: int = 1, worker_ready: bool = False
) -> Process:
    """Start `whisperx-api run`; wait until ready (and, with worker_ready, until its worker runs)."""
    server = Process(["run", "--host", "127.0.0.1", "--port", str(port), "--workers", str(web_workers)], env, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"server exited:\n{server.log_text()[-3000:]}")
        try:
            ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1)
            if ready.status_code == 200 and (not worker_ready or ready.json()["worker"] != "starting"):
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"server did not become ready:\n{server.log_text()[-3000:]}")


def avoid_minute_edge(margin_s: float = 3.0) -> None:
    """Rate windows are calendar minutes: start a counted sequence well inside one."""
    into = time.time() % 60
    if into > 60 - margin_s:
        time.sleep(60 - into + 0.05)


async def submit(client: httpx.AsyncClient, path: Path, endpoint: str = "/speech-to-text", **fields: Any) -> str:
    data = {
        k: (json.dumps(v) if isinstance(v, (dict, list)) else str(v).lower() if isinstance(v, bool) else str(v))
        for k, v in fields.items()
    }
    with path.open("rb") as fh:
        response = await client.post(endpoint, files={"file": (path.name, fh)}, data=data)
    assert response.status_code == 200, response.text
    return str(response.json()["identifier"])


async def result_of(client: httpx.AsyncClient, identifier: str, timeout: float = 240) -> dict[str, Any]:
    task = await wait_for_status(client, identifier, {"completed", "failed"}, timeout=timeout)
    assert task["status"] == "completed", task
    return task


class RedisServer:
    """A redis-server of a test's own (TCP on loopback, append-only persistence in `directory`),
    to stop, kill and start again under a running service."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory, self.port = directory, port or free_port()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> RedisServer:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return self
            time.sleep(0.05)
        raise AssertionError(f"redis-server on {self.port} did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def wait_until(check: Any, timeout: float, interval: float = 0.2, *, log: Path | None = None) -> float:
    """Poll `check()` until it is true; the seconds it took (AssertionError after `timeout`,
    with the end of `log`, the server's, so a failure on CI says what the service did)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return time.monotonic() - started
        time.sleep(interval)
    tail = log.read_text(errors="replace")[-6000:] if log is not None and log.exists() else ""
    raise AssertionError(f"not true after {timeout}s: {check}" + (f"\nthe log ends:\n{tail}" if tail else ""))


# the files of GPU code a CUDA build of torch maps: NVIDIA's pip libraries, torch's CUDA parts, Triton
GPU_LIBRARY = re.compile(r"/nvidia/|/triton/|/lib(?:torch_cuda|c10_cuda|cudnn|cublas|cusparse|nvrtc|nvJitLink|cufft)")


def resident_gpu_library_data(pid: int | str) -> int:
    """Bytes resident in `pid` of GPU_ONLY_LIBRARIES' zero-initialised data (memory.release_gpu_library_data)."""
    present = mappings(pid)
    ranges = [
        r for path, at in loaded_libraries(present, GPU_ONLY_LIBRARIES).items() for r in zero_filled_ranges(path, at)
    ]
    return sum(m.resident for m in present if any(lo <= m.start and m.end <= hi for lo, hi in ranges))


def resident_library_pages(pid: int | str, only: re.Pattern[str] | None = None) -> int:
    """Bytes of read-only file pages resident in `pid` that hold only the file's own content."""
    return sum(m.resident for m in droppable_file_mappings(pid) if only is None or only.search(m.path))
