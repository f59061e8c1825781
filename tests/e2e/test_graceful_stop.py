"""A deploy loses nothing: a stopped service lets its running task finish (or puts it back on the
queue), keeps the queued ones, and a restarted one runs them, each once.

The ways a service is stopped: SIGTERM to the main process only (`podman stop`, a compose
redeploy), SIGINT to the whole process group (Ctrl-C in a terminal) and SIGTERM to the whole
group (systemd's default KillMode=control-group, `kill -- -PGID`)."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.audio import concatenate, speak
from tests.support import Process, clear_queue, descendants, free_port, make_settings, settings_env, start_server

pytestmark = [pytest.mark.slow, pytest.mark.models]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    sentence = speak("The service is being stopped while this recording is transcribed.", root / "s.wav")
    return {
        "long": concatenate([sentence] * 60, root / "long.wav"),  # 4 minutes: ~20 s of work
        "short": speak("A short note for the queue.", root / "short.wav"),
    }


def wait_for(
    http: httpx.Client, identifier: str, statuses: set[str], timeout: float, stage: str | None = None
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        task = http.get(f"/task/{identifier}").json()
        if task["status"] in statuses and (stage is None or task["stage"] == stage):
            return task
        time.sleep(0.2)
    raise AssertionError(f"{identifier} never reached {statuses}: {task}")


def runs(logs: list[Path]) -> dict[str, int]:
    """How often each task's pipeline ran, from the servers' logs."""
    counts: dict[str, int] = {}
    for log in logs:
        for task_id in re.findall(r"task ([0-9a-f-]{36}) \([a-z_]+\): running", log.read_text(errors="replace")):
            counts[task_id] = counts.get(task_id, 0) + 1
    return counts


def submit(http: httpx.Client, clip: Path) -> str:
    response = http.post(
        "/service/transcribe", files={"file": (clip.name, clip.read_bytes())}, data={"model": "tiny.en"}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["identifier"])


def stop(server: Process, *, how: str, timeout: float) -> float:
    started = time.monotonic()
    server.stop(timeout=timeout, ctrl_c=how == "sigint-group", group_term=how == "sigterm-group")
    return time.monotonic() - started


def assert_none_outlives(children: list[int]) -> None:
    """No process of a stopped server is left (multiprocessing's resource tracker exits once its
    pipe closes: it gets 5 s)."""
    deadline = time.monotonic() + 5
    while [pid for pid in children if Path(f"/proc/{pid}").exists()] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()], "a child process outlived the server"


@pytest.mark.parametrize("how", ["sigterm-main", "sigint-group", "sigterm-group"])
def test_a_stopped_service_finishes_its_task_keeps_the_queue_and_runs_it_after_restart(
    tmp_path: Path, clips: dict[str, Path], how: str
) -> None:
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'records.db'}")
    env = {**settings_env(settings), "SHUTDOWN_GRACE_S": "60"}
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(env, logs[0], port, timeout=120, worker_ready=True)
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            running = submit(http, clips["long"])
            wait_for(http, running, {"processing"}, 120)
            queued = [submit(http, clips["short"]) for _ in range(10)]
            children = descendants(server.proc.pid)
            took = stop(server, how=how, timeout=90)
        assert server.proc.returncode is not None and took < 90
        assert_none_outlives(children)
        log = logs[0].read_text(errors="replace")
        assert "Traceback" not in log, log[-3000:]

        server = start_server(env, logs[1], port, timeout=120, worker_ready=True)
        with httpx.Client(base_url=base, timeout=30) as http:
            first = wait_for(http, running, {"completed", "failed"}, 60)
            assert first["status"] == "completed" and first["metadata"]["attempts"] == 1, (
                first
            )  # finished before the stop
            for identifier in queued:
                task = wait_for(http, identifier, {"completed", "failed"}, 120)
                assert task["status"] == "completed", task
        counted = runs(logs)
        assert {identifier: counted.get(identifier) for identifier in [running, *queued]} == dict.fromkeys(
            [running, *queued], 1
        ), counted
        assert counted[running] == 1 and running in logs[0].read_text()
    finally:
        server.stop()
        clear_queue(settings.queue_name)


def test_a_task_that_outlasts_the_grace_goes_back_on_the_queue_and_a_v1_request_ends(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'records.db'}")
    env = {**settings_env(settings), "SHUTDOWN_GRACE_S": "1"}
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(env, logs[0], port, timeout=120, worker_ready=True)
    answers: list[httpx.Response | BaseException] = []
    try:
        with httpx.Client(base_url=base, timeout=60) as http:
            queued = submit(http, clips["long"])
            wait_for(http, queued, {"processing"}, 120)

            def openai_request() -> None:
                try:
                    with httpx.Client(base_url=base, timeout=120) as client:
                        answers.append(client.post(
                            "/v1/audio/transcriptions", files={"file": ("long.wav", clips["long"].read_bytes())},
                            data={"model": "tiny.en"},
                        ))  # fmt: skip
                except BaseException as exc:  # the connection may close under it
                    answers.append(exc)

            caller = threading.Thread(target=openai_request)
            caller.start()
            deadline = time.monotonic() + 60
            inline: list[dict[str, Any]] = []
            while not inline and time.monotonic() < deadline:
                tasks = http.get("/task/all").json()["tasks"]
                inline = [t for t in tasks if t["task_type"] == "openai_transcription"]
                time.sleep(0.1)
            assert inline, "the /v1 request did not start"
            stop(server, how="sigterm-main", timeout=60)
            caller.join(60)
        server = start_server(env, logs[1], port, timeout=120, worker_ready=True)
        with httpx.Client(base_url=base, timeout=30) as http:
            task = wait_for(http, queued, {"completed", "failed"}, 180)
            # put back on the queue, not failed, and the cut attempt not counted
            assert task["status"] == "completed" and task["metadata"]["attempts"] == 1, task
            v1 = http.get(f"/task/{inline[0]['identifier']}").json()
            assert v1["status"] == "failed" and v1["error"]["code"] == "SERVICE_SHUTTING_DOWN", v1
        assert runs(logs)[queued] == 2  # cut once by the stop, then run whole
        (answer,) = answers
        if isinstance(answer, httpx.Response):
            assert answer.status_code == 503 and answer.json()["error"]["code"] == "SERVICE_SHUTTING_DOWN"
    finally:
        server.stop()
        clear_queue(settings.queue_name)


def test_a_service_stopped_while_its_inference_process_starts_stops_in_seconds(tmp_path: Path) -> None:
    """SIGTERM to the whole group while the worker's warm-up starts the inference process. The
    child is its parent's to stop: before, the signal killed it half-imported and the warm-up
    waited for it until READY_TIMEOUT_S (300 s), so the stop took five minutes."""
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'records.db'}")
    port = free_port()
    server = start_server(settings_env(settings), tmp_path / "server.log", port, timeout=120)
    try:
        ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).json()
        assert ready["worker"] == "starting", ready  # the inference process is importing the pipeline
        children = descendants(server.proc.pid)
        took = stop(server, how="sigterm-group", timeout=90)
        assert server.proc.returncode is not None and took < 45, took
        assert_none_outlives(children)
    finally:
        server.stop()
        clear_queue(settings.queue_name)
