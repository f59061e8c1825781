"""compose.yaml and the Containerfile cannot be built here (no container engine): check them by reading."""

from __future__ import annotations

import yaml

from tests.support import REPO


def test_compose_parses_and_names_the_documented_services() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    assert {"api", "worker", "redis", "postgres", "migrate"} <= set(services)
    readme = (REPO / "README.md").read_text()
    for name in ("api", "worker", "redis", "postgres", "migrate"):
        assert f"`{name}`" in readme, f"README does not describe the {name} service"
    assert services["migrate"]["command"][-2:] == ["database", "upgrade"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["worker"]["command"][-2:] == ["workers", "run"]
    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert "postgres-data" in compose["volumes"] and "models" in compose["volumes"]
    for name in ("api", "worker"):
        # the engine's SIGKILL must come after SHUTDOWN_GRACE_S (30 s), or a deploy cuts running tasks
        assert int(services[name]["stop_grace_period"].rstrip("s")) > 30
        env = services[name]["environment"]
        assert env["DB_URL"].startswith("postgresql://") and env["REDIS_URL"].startswith("redis://")


def test_containerfile_is_cuda_non_root_with_ffmpeg() -> None:
    text = (REPO / "Containerfile").read_text()
    assert "FROM docker.io/nvidia/cuda:" in text and "runtime" in text
    assert "ffmpeg" in text
    assert "\nUSER " in text and "USER root" not in text.split("\nUSER ")[-1]
    assert "whisperx-api" in text
