from __future__ import annotations

import pytest

from whisperx_api.settings import SettingsError, load_settings, to_async_db_url


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.whisper_model == "base"
    assert settings.db_url == "sqlite+aiosqlite:///records.db"
    assert settings.max_upload_size_mb == 0 and settings.max_queued_gpu_requests == 0
    assert settings.rate_limit.enabled is False and settings.auth.enabled is False
    assert settings.sync_gpu_quota_fraction == 0.5


def test_seed_variable_names_including_nested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHISPER_MODEL", "tiny.en")
    monkeypatch.setenv("DEFAULT_LANG", "de")
    monkeypatch.setenv("RATE_LIMIT__ENABLED", "true")
    monkeypatch.setenv("RATE_LIMIT__KEY_STRATEGY", "bearer_token")
    monkeypatch.setenv("AUTH__ENABLED", "true")
    monkeypatch.setenv("AUTH__BEARER_TOKEN", "s3cret")
    monkeypatch.setenv("MAX_CONCURRENT_GPU_TASKS", "3")
    settings = load_settings()
    assert settings.whisper_model == "tiny.en" and settings.default_lang == "de"
    assert settings.rate_limit.enabled and settings.rate_limit.key_strategy == "bearer_token"
    assert settings.auth.bearer_token == "s3cret"
    assert settings.max_concurrent_gpu_tasks == 3


def test_dotenv_file_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / ".env").write_text("WHISPER_MODEL=large-v3\nLOG_LEVEL=warning\n")
    settings = load_settings()
    assert settings.whisper_model == "large-v3"
    assert settings.effective_log_level == "WARNING"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///records.db", "sqlite+aiosqlite:///records.db"),
        ("postgresql://u@h:5432/db", "postgresql+asyncpg://u@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_db_url_rewritten_to_async_driver(url: str, expected: str) -> None:
    assert to_async_db_url(url) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_URL", "postgresql+psycopg2://u@h/db"),
        ("DB_URL", "mysql://u@h/db"),
        ("MAX_CONCURRENT_GPU_TASKS", "zero"),
        ("MAX_UPLOAD_SIZE_MB", "-1"),
        ("SYNC_GPU_QUOTA_FRACTION", "1.5"),
        ("RATE_LIMIT__KEY_STRATEGY", "cookie"),
        ("DEVICE", "tpu"),
    ],
)
def test_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()


def test_auth_without_token_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH__ENABLED", "true")
    with pytest.raises(SettingsError, match="AUTH__BEARER_TOKEN"):
        load_settings()
