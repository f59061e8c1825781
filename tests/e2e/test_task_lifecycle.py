"""Every way a task's life can go wrong ends in a final state: a streaming client that goes
away, an inference process that dies under a task (a database that fails between the admission
slot and the task's row: test_faults.py). Real server processes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.audio import concatenate, speak
from tests.support import (
    Process,
    clear_queue,
    descendants,
    free_port,
    make_settings,
    process_name,
    settings_env,
    start_server,
)

pytestmark = [pytest.mark.slow, pytest.mark.models]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    sentence = speak("Every task ends in a final state, whatever happens to its client.", root / "s.wav")
    return {"long": concatenate([sentence] * 40, root / "long.wav"), "short": sentence}


def read_task(http: httpx.Client, identifier: str) -> dict[str, Any]:
    task: dict[str, Any] = http.get(f"/task/{identifier}").json()
    return task


def wait_final(http: httpx.Client, identifier: str, timeout: float, server: Process | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        task = read_task(http, identifier)
        if task["status"] in ("completed", "failed"):
            return task
        time.sleep(0.1)
    log = server.log_text()[-4000:] if server is not None else ""
    raise AssertionError(f"{identifier} is not final after {timeout}s: {task}\n{log}")


def test_a_streaming_client_that_goes_away_leaves_a_final_row(tmp_path: Path, clips: dict[str, Path]) -> None:
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'records.db'}")
    port = free_port()
    server = start_server(settings_env(settings), tmp_path / "server.log", port, timeout=120, worker_ready=True)
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=60) as http:
            with http.stream(
                "POST", "/v1/audio/transcriptions", files={"file": ("long.wav", clips["long"].read_bytes())},
                data={"model": "tiny.en", "stream": "true"},
            ) as response:  # fmt: skip
                assert response.status_code == 200
                identifier = response.headers["x-task-id"]
                for line in response.iter_lines():
                    # the first keep-alive (a second in, long before the 40 sentences are done;
                    # a delta may come only with the last batch of windows): the client goes away
                    if line.startswith(":"):
                        break
            gone = time.monotonic()
            task = wait_final(http, identifier, 5, server)
            assert time.monotonic() - gone <= 5
            assert task["status"] == "failed" and task["error"]["code"] == "CLIENT_DISCONNECTED", task
            # the service goes on: the next request is served
            response = http.post(
                "/v1/audio/transcriptions", files={"file": ("s.wav", clips["short"].read_bytes())},
                data={"model": "tiny.en"},
            )  # fmt: skip
            assert response.status_code == 200 and "final state" in response.json()["text"].lower()
    finally:
        server.stop()
        clear_queue(settings.queue_name)


def test_an_inference_process_crash_fails_only_its_own_task(tmp_path: Path, clips: dict[str, Path]) -> None:
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'records.db'}")
    port = free_port()
    server = start_server(settings_env(settings), tmp_path / "server.log", port, timeout=120, worker_ready=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            ids = [
                http.post(
                    "/service/transcribe", files={"file": (clip.name, clip.read_bytes())}, data={"model": "tiny.en"}
                ).json()["identifier"]
                for clip in (clips["long"], clips["short"])
            ]
            deadline = time.monotonic() + 120
            while http.get(f"/task/{ids[0]}").json()["stage"] not in ("vad", "transcribing"):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            (child,) = [pid for pid in descendants(server.proc.pid) if process_name(pid) == "whisperx-infer"]
            os.kill(child, signal.SIGKILL)
            crashed, after = wait_final(http, ids[0], 60), wait_final(http, ids[1], 120)
            assert crashed["status"] == "failed" and crashed["error"]["code"] == "INFERENCE_PROCESS_EXITED", crashed
            assert after["status"] == "completed", after
    finally:
        server.stop()
        clear_queue(settings.queue_name)
