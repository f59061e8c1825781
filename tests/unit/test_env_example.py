"""`.env.example` documents every setting, and its values are the defaults."""

from __future__ import annotations

import pytest
from dotenv import dotenv_values

from tests.support import REPO
from whisperx_api.settings import Settings, load_settings


def _names() -> set[str]:
    names = set()
    for field, info in Settings.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            names.update(f"{field}__{sub}".upper() for sub in annotation.model_fields)
        else:
            names.add(field.upper())
    return names


def test_every_setting_is_documented() -> None:
    documented = set(dotenv_values(REPO / ".env.example"))
    assert _names() == documented


def test_documented_values_are_the_defaults(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / ".env").write_text((REPO / ".env.example").read_text())
    monkeypatch.chdir(tmp_path)
    from_file = load_settings()
    monkeypatch.chdir(tmp_path / "..")
    assert from_file == Settings(_env_file=None)  # type: ignore[call-arg]
