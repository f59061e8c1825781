"""A worker killed mid-task (SIGKILL): the task is re-run once, or failed as `interrupted`."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.audio import concatenate, speak
from tests.support import REDIS_URL, Process, clear_queue, free_port, make_settings, settings_env, start_server

pytestmark = [pytest.mark.slow, pytest.mark.models]


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crash")
    sentence = speak("This recording is long enough to kill the worker while it is being transcribed.", root / "s.wav")
    return concatenate([sentence] * 20, root / "long.wav")


def _wait(http: httpx.Client, identifier: str, statuses: set[str], timeout: float) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    task: dict = {}  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        task = http.get(f"/task/{identifier}").json()
        if task["status"] in statuses and (task["status"] != "processing" or task["stage"] in ("vad", "transcribing")):
            return task
        time.sleep(0.1)
    raise AssertionError(f"{identifier} never reached {statuses}: {task}")


def _run(tmp_path: Path, long_clip: Path, max_attempts: int, lose: str | None = None) -> dict:  # type: ignore[type-arg]
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'records.db'}", job_max_attempts=max_attempts)
    env = {**settings_env(settings), "JOB_MAX_ATTEMPTS": str(max_attempts)}
    port = free_port()
    web = start_server({**env, "WORKER_IN_PROCESS": "false"}, tmp_path / "web.log", port)
    worker = Process(["workers", "run"], env, tmp_path / "w1.log")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            response = http.post(
                "/service/transcribe", files={"file": ("long.wav", long_clip.read_bytes())}, data={"model": "tiny.en"}
            )
            identifier = response.json()["identifier"]
            _wait(http, identifier, {"processing"}, timeout=120)
            worker.kill()
            if lose == "everything":  # e.g. a Redis without persistence restarted
                clear_queue(settings.queue_name)
            elif lose == "lists":  # the job record survives but sits in no list a worker reads
                store = redis.Redis.from_url(REDIS_URL)
                store.delete(f"saq:{settings.queue_name}:active", f"saq:{settings.queue_name}:queued")
            assert http.get(f"/task/{identifier}").json()["status"] == "processing"
            worker = Process(["workers", "run"], env, tmp_path / "w2.log")
            return _wait(http, identifier, {"completed", "failed"}, timeout=180)
    finally:
        worker.stop()
        web.stop()
        clear_queue(settings.queue_name)


def test_killed_worker_task_is_rerun_by_the_next_worker(tmp_path: Path, long_clip: Path) -> None:
    task = _run(tmp_path, long_clip, max_attempts=2)
    assert task["status"] == "completed", task
    assert task["metadata"]["attempts"] == 2
    assert "transcribed" in " ".join(s["text"] for s in task["result"]["segments"]).lower()


@pytest.mark.parametrize("lose", ["everything", "lists"])
def test_task_whose_job_vanished_is_requeued_at_start(tmp_path: Path, long_clip: Path, lose: str) -> None:
    task = _run(tmp_path, long_clip, max_attempts=2, lose=lose)
    assert task["status"] == "completed", task
    assert task["metadata"]["attempts"] == 2


def test_task_out_of_attempts_fails_as_interrupted(tmp_path: Path, long_clip: Path) -> None:
    task = _run(tmp_path, long_clip, max_attempts=1)
    assert task["status"] == "failed"
    assert task["error"]["code"] == "interrupted" and "interrupted" in task["error"]["message"]
    assert redis.Redis.from_url(REDIS_URL).ping()
