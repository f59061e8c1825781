"""A schema fuzzer (schemathesis) against the live server: every response it provokes must be
documented (status, content type, headers) and match its documented schema, and none may be a
server error.

Left out on purpose: `positive_data_acceptance` (a schema cannot say that a file must be decodable
audio or that a vector must be non-zero, so schema-valid requests are still refused with 4xx) and
`unsupported_method` (Litestar answers OPTIONS on every path, for CORS preflight)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import clear_queue, free_port, make_settings, settings_env, start_server

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    ]
)


def test_no_response_violates_the_documented_schema(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'records.db'}")
    port = free_port()
    env = {**settings_env(settings), "WORKER_IN_PROCESS": "false", "LOG_LEVEL": "WARNING"}
    server = start_server(env, tmp_path / "server.log", port)
    try:
        run = subprocess.run(
            [
                sys.executable, "-m", "schemathesis.cli", "run", f"http://127.0.0.1:{port}/docs/openapi.json",
                "--checks", CHECKS, "--max-examples", "6", "--max-time", "90", "--workers", "2",
                "--request-timeout", "30", "--seed", "1", "--no-color",
            ],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        assert "passed" in run.stdout
    finally:
        server.stop()
        clear_queue(settings.queue_name)
