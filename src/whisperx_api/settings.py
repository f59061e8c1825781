"""Typed settings read once from the environment and `.env`.

Variable names follow the seed's contract (DEFAULT_LANG, WHISPER_MODEL, RATE_LIMIT__ENABLED, ...);
nested groups use pydantic-settings' `__` delimiter so the seed's names work unchanged.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(RuntimeError):
    """Raised at start-up when a variable is invalid; the message names the variable."""


class RateLimitSettings(BaseModel):
    enabled: bool = False
    requests_per_minute: int = Field(default=60, ge=1)
    burst: int = Field(default=10, ge=1)
    key_strategy: Literal["ip", "bearer_token"] = "ip"
    trusted_proxies: list[str] = Field(default_factory=list)


class AuthSettings(BaseModel):
    enabled: bool = False
    bearer_token: str = ""


ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}
ALLOWED_ASYNC_SCHEMES = {"sqlite+aiosqlite", "postgresql+asyncpg"}


def to_async_db_url(url: str) -> str:
    """Rewrite plain `sqlite://` / `postgresql://` URLs to their async drivers; refuse sync drivers."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    if scheme in ASYNC_DRIVERS:
        return f"{ASYNC_DRIVERS[scheme]}://{rest}"
    if scheme in ALLOWED_ASYNC_SCHEMES:
        return url
    raise ValueError(
        f"scheme {scheme!r} is not supported: use sqlite:// or postgresql:// "
        "(rewritten to the aiosqlite/asyncpg async drivers); sync drivers such as psycopg2 cannot be used"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_nested_delimiter="__", extra="ignore", case_sensitive=False)

    # seed variables
    default_lang: str = Field(default="", description="default language code; empty = auto-detect")
    whisper_model: str = "base"
    log_level: str | None = None
    environment: str = "production"
    dev: bool = False
    filter_warning: bool = True
    db_url: str = "sqlite:///records.db"
    device: Literal["auto", "cuda", "cpu"] = "auto"
    compute_type: Literal["auto", "float16", "float32", "int8", "int8_float16", "bfloat16"] = "auto"
    hf_token: str | None = None
    max_concurrent_gpu_tasks: int = Field(default=1, ge=1)

    # safeguards (off by default)
    max_upload_size_mb: int = Field(default=0, ge=0)
    max_queued_gpu_requests: int = Field(default=0, ge=0)
    sync_gpu_quota_fraction: float = Field(default=0.5, ge=0.0, le=1.0)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)

    # service
    redis_url: str | None = None
    queue_name: str = "whisperx"
    redis_max_connections: int = Field(default=50, ge=4)
    # the embedded Redis (REDIS_URL unset) is started again when it exits; after this long of
    # failed attempts the service reports itself not alive (/health/live 503)
    embedded_redis_restart_timeout_s: int = Field(default=60, ge=1)
    data_dir: Path = Path("data")
    models_dir: Path | None = None
    db_auto_migrate: bool = True
    worker_in_process: bool = True
    job_timeout_s: int = Field(default=6 * 3600, ge=10)
    job_heartbeat_s: int = Field(default=30, ge=1)
    job_max_attempts: int = Field(default=2, ge=1)
    # on SIGTERM/SIGINT: how long a running task may take to finish before it is put back on the
    # queue (a /v1 request: ended with SERVICE_SHUTTING_DOWN); the inference process stops after
    shutdown_grace_s: int = Field(default=30, ge=0)
    # readiness says "starting" this long while an in-process worker warms up (or waits for Redis
    # and the database); after that "unavailable", with 503
    worker_start_timeout_s: int = Field(default=300, ge=1)
    # a completed task's media is kept this many hours for playback (GET /task/{id}/audio), then
    # deleted; 0: deleted when the task ends. A failed task's media is deleted at once; a deleted
    # task's with it
    media_retention_h: float = Field(default=24.0, ge=0.0)
    # keep each enrolment's recording under DATA_DIR/voice_samples, so `whisperx-api speakers
    # reembed` can recompute the library's vectors when the speaker encoder changes
    keep_voice_samples: bool = True
    # outbound requests (/speech-to-text-url downloads and completion callbacks)
    url_download_timeout_s: int = Field(default=300, ge=1)
    url_max_download_mb: int = Field(default=2048, ge=1)
    outbound_allowed_networks: list[str] = Field(default_factory=list)
    callback_retries: int = Field(default=4, ge=1, le=20)
    callback_backoff_s: float = Field(default=2.0, ge=0.0)
    callback_timeout_s: float = Field(default=10.0, gt=0.0)

    # pipeline
    align_backend: Literal["auto", "wav2vec2", "whisper"] = "auto"
    diarization_backend: Literal["auto", "pyannote", "campp", "embedded"] = "auto"
    pyannote_pipeline: str = "pyannote/speaker-diarization-community-1"
    vad_method: Literal["pyannote", "silero"] = "pyannote"
    batch_size: int = Field(default=8, ge=1)
    model_cache_size: int = Field(default=2, ge=1)
    model_idle_unload_s: int = Field(default=1800, ge=0)
    # replace the inference process, while no call is in flight, once its own memory (RssAnon)
    # rests this much above its lowest rest with the same models loaded (0: never): what a long
    # recording's heap fragmentation leaves
    inference_recycle_growth_mb: int = Field(default=64, ge=0)

    @field_validator("log_level", "hf_token", "redis_url", "models_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `REDIS_URL=` in a .env file means "not set", not "the empty URL"
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("db_url")
    @classmethod
    def _async_db_url(cls, value: str) -> str:
        return to_async_db_url(value)

    @model_validator(mode="after")
    def _auth_needs_token(self) -> Settings:
        if self.auth.enabled and not self.auth.bearer_token:
            raise ValueError("AUTH__ENABLED=true needs AUTH__BEARER_TOKEN")
        return self

    @property
    def effective_log_level(self) -> str:
        return (self.log_level or ("DEBUG" if self.dev else "INFO")).upper()

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @property
    def max_upload_bytes(self) -> int | None:
        return self.max_upload_size_mb * 1024 * 1024 or None


def _variable_name(loc: tuple[int | str, ...]) -> str:
    return "__".join(str(part) for part in loc).upper() or "settings"


def load_settings() -> Settings:
    """Build and validate settings; a bad value raises SettingsError naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{_variable_name(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"invalid configuration: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
