"""When the speaker encoder changes, the kept enrolment recordings let `whisperx-api speakers
reembed` recompute the library; voices without a recording are listed to be enrolled again."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from tests.audio import VOICE_A, speak
from tests.support import BIN, REPO, clear_queue, make_settings, settings_env
from whisperx_api.app import create_app
from whisperx_api.pipeline.encoders import CAMPP_MODEL, EMBEDDED_MODEL

pytestmark = pytest.mark.models


def reembed(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), "speakers", "reembed", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip


def rows(db: Path) -> dict[str, tuple[str, str, int, str | None]]:
    with sqlite3.connect(db) as conn:
        return {
            label: (str(speaker_id), model, dim, sample)
            for speaker_id, label, model, dim, sample in conn.execute(
                "select id, label, encoder_model, dimension, sample_path from speaker"
            )
        }


async def test_reembed_recomputes_kept_voices_and_lists_the_rest(tmp_path: Path) -> None:
    db = tmp_path / "records.db"
    # a library built while the service diarized with resemblyzer
    old = make_settings(tmp_path / "data", f"sqlite:///{db}", diarization_backend="embedded")
    clip = speak("My name is Alice and I look after the budget of our small company.", tmp_path / "a.wav", VOICE_A)
    async with AsyncTestClient(app=create_app(old), timeout=120) as client:
        with clip.open("rb") as fh:
            enrolled = await client.post(
                "/speakers/enroll", files={"file": ("a.wav", fh)}, data={"speaker_label": "Alice"}
            )
        assert enrolled.status_code == 201, enrolled.text
        assert enrolled.json()["encoder_model"] == EMBEDDED_MODEL
        posted = await client.post("/speakers", json={"speaker_label": "Bob", "embedding": [0.1] * 256})
        assert posted.status_code == 201, posted.text
    clear_queue(old.queue_name)
    before = rows(db)
    sample = Path(str(before["Alice"][3]))
    assert sample.is_file() and sample.parent == (tmp_path / "data" / "voice_samples").resolve()
    assert before["Bob"][3] is None

    # the service now runs with its default encoder (CAM++)
    new = make_settings(tmp_path / "data", f"sqlite:///{db}")
    env = {**settings_env(new), "DIARIZATION_BACKEND": "auto"}
    dry = reembed(env, "--dry-run")
    assert dry.returncode == 1, dry.stderr  # something must be enrolled again
    assert "would re-embed: Alice" in dry.stdout and "enrol again: Bob" in dry.stdout, dry.stdout
    assert rows(db) == before

    done = reembed(env)
    assert done.returncode == 1, done.stderr
    assert "re-embedded: Alice" in done.stdout and "1 re-embedded, 1 to enrol again" in done.stdout, done.stdout
    after = rows(db)
    assert after["Alice"][1:] == (CAMPP_MODEL, 192, str(sample)) and after["Bob"] == before["Bob"]
    again = reembed(env)
    assert "0 re-embedded, 1 to enrol again, 1 already made by " + CAMPP_MODEL in again.stdout, again.stdout
    clear_queue(new.queue_name)

    # the recording goes with its speaker
    async with AsyncTestClient(app=create_app(new), timeout=120) as client:
        listed = (await client.get("/speakers")).json()["speakers"]
        alice = next(s for s in listed if s["speaker_label"] == "Alice")
        assert (await client.delete(f"/speakers/{alice['uuid']}")).status_code == 200
    clear_queue(new.queue_name)
    assert not sample.exists()
