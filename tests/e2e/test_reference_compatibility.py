"""Clients written for the reference service (whisperX-FastAPI) work unchanged.

`tests/data/whisperx-fastapi-interface.json` is the reference's interface (from its published
OpenAPI document): every operation, and where each parameter goes, with its type, enum and
default. Against a live server, on SQLite and on PostgreSQL:
- every reference operation exists at the same path and method, and documents each reference
  parameter in the same place;
- every parameter is accepted where the reference takes it, with each of the reference's enum
  values (hub-only models are refused as MODEL_NOT_FOUND on this offline machine: understood,
  but not servable here);
- end to end with the real models, options sent as query parameters change the result the way
  they should (model and language, translation, speaker count bounds, the VAD);
- unknown parameters are refused in the query and in the form, conflicting duplicates too, and
  a refused request queues nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.audio import GERMAN, GERMAN_IN_ENGLISH, GERMAN_VOICE, silence, speak
from tests.local_http import LocalServer
from tests.metrics import normalise_text
from tests.speech_corpus import espeak_meeting
from tests.support import REPO, clear_queue, free_port, make_settings, settings_env, start_server

INTERFACE = json.loads((REPO / "tests" / "data" / "whisperx-fastapi-interface.json").read_text())
OPERATIONS: list[dict[str, Any]] = INTERFACE["operations"]
FILE_HOST = "127.0.0.3"
# values for parameters whose reference default is null
SAMPLES: dict[str, Any] = {
    "align_model": "WAV2VEC2_ASR_BASE_960H", "min_speakers": 2, "max_speakers": 2, "initial_prompt": "Hello.",
    "hotwords": "Sheila", "language": "de",
}  # fmt: skip
# the only refusals a reference value may meet: a model that is not on this offline machine
UNDERSTOOD = {"MODEL_NOT_FOUND"}


def enum_values(spec: dict[str, Any]) -> list[Any]:
    kind: str = spec["type"]
    if kind.startswith("enum["):
        return list(json.loads(kind[4:]))
    if spec.get("default") is not None:
        return [spec["default"]]
    return [SAMPLES.get(spec["name"], "x")]


def query_value(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [str(v).lower() if isinstance(v, bool) else str(v) for v in values]


class Service:
    """A live server and what a request to it needs."""

    def __init__(self, base: str, root: Path, files: LocalServer) -> None:
        self.base, self.root, self.files = base, root, files
        self.clip = silence(root / "quiet.wav", 1.0)
        self.transcript = root / "transcript.json"
        self.transcript.write_text(
            json.dumps({"segments": [{"start": 0.0, "end": 1.0, "text": "Hello."}], "language": "en"})
        )
        self.turns = root / "turns.json"
        self.turns.write_text(json.dumps({"segments": [{"start": 0.0, "end": 1.0, "speaker": "SPEAKER_00"}]}))

    def body(self, operation: dict[str, Any]) -> dict[str, Any]:
        """httpx keyword arguments for a valid body of a reference operation."""
        body = operation.get("body") or {}
        if "application/x-www-form-urlencoded" in body:
            return {"data": {"url": self.files.url("/audio.wav")}}
        if "multipart/form-data" in body:
            uploads = {
                "file": self.clip, "transcript": self.transcript, "aligned_transcript": self.transcript,
                "diarization_result": self.turns,
            }  # fmt: skip
            fields = body["multipart/form-data"]["fields"]
            return {"files": {name: (uploads[name].name, uploads[name].read_bytes()) for name in fields}}
        return {}


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compat")


@pytest.fixture(scope="module")
def files(roots: Path) -> Iterator[LocalServer]:
    with LocalServer(FILE_HOST, silence(roots / "remote.wav", 1.0)) as server:
        yield server


def start(root: Path, db_url: str, **env: str) -> tuple[Any, str, Any]:
    settings = make_settings(root / "data", db_url)
    port = free_port()
    server_env = {**settings_env(settings), "OUTBOUND_ALLOWED_NETWORKS": f'["{FILE_HOST}/32", "127.0.0.1/32"]', **env}
    server = start_server(
        server_env, root / "server.log", port, timeout=120, worker_ready=env.get("WORKER_IN_PROCESS") != "false"
    )
    return server, f"http://127.0.0.1:{port}", settings


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.db'}"
    return str(request.getfixturevalue("pg_database"))


async def test_every_reference_operation_and_parameter_is_accepted_where_the_reference_takes_it(
    database: str, tmp_path: Path, files: LocalServer
) -> None:
    # no worker: accepted requests stay queued (this test is about what the API accepts); a
    # multilingual default model, as the reference's (tiny.en, the tests' default, is English-only)
    server, base, settings = start(tmp_path, database, WORKER_IN_PROCESS="false", WHISPER_MODEL="base")
    service = Service(base, tmp_path, files)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            document = (await client.get("/docs/openapi.json")).json()
            refused: list[tuple[str, str, Any, int, str]] = []
            accepted: list[str] = []
            limit = asyncio.Semaphore(4)

            async def attempt(operation: dict[str, Any], name: str, value: Any) -> None:
                if name == "callback_url":
                    value = files.url("/callback")
                params: list[tuple[str, str]] = [(name, v) for v in query_value(value)]
                async with limit:
                    response = await client.request(
                        operation["method"], operation["path"], params=params, **service.body(operation)
                    )
                if response.status_code == 200:
                    accepted.append(response.json()["identifier"])
                else:
                    code = response.json()["error"]["code"]
                    if not (name == "model" and code in UNDERSTOOD):
                        refused.append((operation["path"], name, value, response.status_code, response.text[:200]))

            jobs = []
            for operation in OPERATIONS:
                documented = document["paths"].get(operation["path"], {}).get(operation["method"].lower())
                assert documented is not None, f"{operation['method']} {operation['path']} is missing"
                in_query = {p["name"] for p in documented.get("parameters", []) if p["in"] == "query"}
                reference_query = {p["name"] for p in operation["query"]}
                assert reference_query <= in_query, (operation["path"], reference_query - in_query)
                body = operation.get("body") or {}
                for encoding, spec in body.items():
                    content = documented["requestBody"]["content"]
                    assert encoding in content, (operation["path"], encoding)
                    schema = content[encoding]["schema"]
                    if "$ref" in schema:
                        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
                    assert set(spec["fields"]) <= set(schema["properties"]), (operation["path"], spec["fields"])
                for spec in operation["query"]:
                    jobs += [attempt(operation, spec["name"], value) for value in enum_values(spec)]
            await asyncio.gather(*jobs)
            assert not refused, "\n".join(map(str, refused))

            # the operations without parameters answer at their reference paths
            queued = (await client.get("/task/all", params={"limit": 1})).json()
            assert queued["total"] == len(accepted) >= len(jobs) - 20  # all but the hub-only models
            identifier = queued["tasks"][0]["identifier"]
            assert (await client.get(f"/task/{identifier}")).status_code == 200
            assert (await client.delete(f"/task/{identifier}/delete")).status_code == 200
            for path in ("/health", "/health/live", "/health/ready"):
                assert (await client.get(path)).status_code == 200
    finally:
        server.stop()
        clear_queue(settings.queue_name)


async def test_unknown_and_conflicting_parameters_are_refused_and_queue_nothing(
    database: str, tmp_path: Path, files: LocalServer
) -> None:
    server, base, settings = start(tmp_path, database, WORKER_IN_PROCESS="false")
    service = Service(base, tmp_path, files)
    upload = {"files": {"file": ("quiet.wav", service.clip.read_bytes())}}
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            cases: list[tuple[str, dict[str, Any], str, str]] = [
                ("/speech-to-text?langauge=de", upload, "UNKNOWN_PARAMETER", "langauge"),
                ("/speech-to-text", {**upload, "data": {"langauge": "de"}}, "UNKNOWN_PARAMETER", "langauge"),
                ("/service/transcribe?num_speakers=2", upload, "UNKNOWN_PARAMETER", "num_speakers"),
                ("/service/diarize", {**upload, "data": {"beam_size": "5"}}, "UNKNOWN_PARAMETER", "beam_size"),
                (
                    "/speech-to-text?model=base",
                    {**upload, "data": {"model": "tiny.en"}},
                    "CONFLICTING_PARAMETER",
                    "model",
                ),
                ("/speech-to-text?language=de&language=en&model=base", upload, "CONFLICTING_PARAMETER", "language"),
                ("/speech-to-text-url?foo=1", {"data": {"url": files.url("/audio.wav")}}, "UNKNOWN_PARAMETER", "foo"),
                ("/task/all?limitt=3", {}, "UNKNOWN_PARAMETER", "limitt"),
            ]
            for path, request, code, param in cases:
                method = "GET" if path.startswith("/task") else "POST"
                response = await client.request(method, path, **request)
                error = response.json()["error"]
                assert response.status_code == 422 and (error["code"], error["param"]) == (code, param), response.text
                if code == "UNKNOWN_PARAMETER" and param in ("langauge", "limitt"):
                    assert ("language" if param == "langauge" else "limit") in error["message"]
            # the same value both ways is one value, not a conflict; a blank form field is an absent
            # one (as the reference reads forms, and as browsers and Swagger send fields left empty)
            blank = {"model": "base", "language": "", "batch_size": "", "hotwords": ""}
            same = await client.post("/speech-to-text?model=base&language=de", **{**upload, "data": blank})
            assert same.status_code == 200, same.text
            assert (await client.get("/task/all")).json()["total"] == 1  # the refused ones left no task ...
            media = settings.data_dir / "media"
            assert len(list(media.iterdir())) == 1  # ... and no stored media
            task = (await client.get(f"/task/{same.json()['identifier']}")).json()
            whisper = task["metadata"]["task_params"]["options"]["whisper"]
            assert (whisper["model"], whisper["language"]) == ("base", "de")
    finally:
        server.stop()
        clear_queue(settings.queue_name)


async def wait_result(client: httpx.AsyncClient, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    identifier = response.json()["identifier"]
    for _ in range(1200):  # at most 240 s
        task = (await client.get(f"/task/{identifier}")).json()
        if task["status"] in ("completed", "failed"):
            assert task["status"] == "completed", task
            return dict(task)
        await asyncio.sleep(0.2)
    raise AssertionError(f"task {identifier} did not finish")


@pytest.mark.models
async def test_query_options_change_the_result(database: str, tmp_path: Path) -> None:
    german = speak(GERMAN, tmp_path / "german.wav", GERMAN_VOICE)
    meeting = espeak_meeting(tmp_path)
    server, base, settings = start(tmp_path, database)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:

            async def post(path: str, clip: Path) -> dict[str, Any]:
                response = await client.post(path, files={"file": (clip.name, clip.read_bytes())})
                return await wait_result(client, response)

            # the reference's way: model and language as query parameters
            task = await post("/service/transcribe?model=base&language=de", german)
            text = normalise_text(" ".join(s["text"] for s in task["result"]["segments"]))
            assert task["result"]["language"] == "de" and {"morgen", "wetter", "familie"} & set(text.split()), text
            assert task["metadata"]["task_params"]["options"]["whisper"]["model"] == "base"
            assert task["result"]["model"] == "base"
            # translation
            task = await post("/service/transcribe?model=base&task=translate", german)
            text = normalise_text(" ".join(s["text"] for s in task["result"]["segments"]))
            assert len(GERMAN_IN_ENGLISH & set(text.split())) >= 5, text
            # speaker count bounds: four voices, held to two
            free = await post("/service/diarize", meeting.path)
            bounded = await post("/service/diarize?min_speakers=2&max_speakers=2", meeting.path)
            assert len(free["result"]["speakers"]) == 4 and len(bounded["result"]["speakers"]) == 2
            # a VAD option
            task = await post("/service/transcribe?vad_method=silero&language=en", meeting.path)
            assert task["result"]["vad"] == "silero"
            assert task["metadata"]["task_params"]["options"]["vad"]["vad_method"] == "silero"
    finally:
        server.stop()
        clear_queue(settings.queue_name)
