"""Process-wide resources, the composition root of a web or worker process: settings, database,
queue, media stores, the inference process, admission slots and the speaker library. The slices'
services are built from it; controllers get those services by dependency injection."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from redis.asyncio import BlockingConnectionPool, Redis

from whisperx_api.db.config import make_db_config, upgrade_database_async
from whisperx_api.db.read_engine import ReadEngine, make_read_engine
from whisperx_api.jobs.queue import TaskQueue
from whisperx_api.media.storage import MediaStore
from whisperx_api.redis_embedded import EmbeddedRedis
from whisperx_api.settings import Settings
from whisperx_api.tasks.events import TaskEvents

if TYPE_CHECKING:
    from whisperx_api.pipeline.remote import RemoteEngine
    from whisperx_api.security.admission import Admission
    from whisperx_api.speaker_library.library import SpeakerLibrary

logger = logging.getLogger(__name__)

REDIS_POOL_WAIT_S = 10  # longest a command waits for a free pooled connection


class Runtime:
    # A plain class, not a dataclass: Litestar/msgspec would otherwise try to validate it
    # field by field when it is injected as a dependency.
    def __init__(
        self,
        settings: Settings,
        db: SQLAlchemyAsyncConfig,
        queue: TaskQueue,
        media: MediaStore,
        embedded_redis: EmbeddedRedis | None = None,
        *,
        null_pool: bool = False,
    ) -> None:
        self.settings = settings
        self.db = db
        self.reads: ReadEngine = make_read_engine(settings, null_pool=null_pool)  # the task API's reads
        self.queue = queue
        self.media = media
        self.voice_samples = MediaStore(settings.data_dir / "voice_samples")
        # tasks' changes, published by the task's owner and followed by any process's clients
        self.events = TaskEvents(queue.redis, settings.queue_name)
        self.embedded_redis = embedded_redis
        self._engine: RemoteEngine | None = None
        self._admission: Admission | None = None
        self._speakers: SpeakerLibrary | None = None

    @property
    def speakers(self) -> SpeakerLibrary:
        """The speaker library, with this process's search indexes."""
        if self._speakers is None:
            from whisperx_api.speaker_library.library import SpeakerLibrary

            self._speakers = SpeakerLibrary(self.db, self.queue.redis, self.settings.queue_name, self.voice_samples)
        return self._speakers

    @property
    def admission(self) -> Admission:
        """MAX_QUEUED_GPU_REQUESTS slots, shared through Redis by every process of the deployment."""
        if self._admission is None:
            from whisperx_api.security.admission import Admission

            s = self.settings
            self._admission = Admission(
                self.queue.redis, s.queue_name, s.max_queued_gpu_requests, s.sync_gpu_quota_fraction,
                hold_s=s.job_timeout_s + 600,
            )  # fmt: skip
        return self._admission

    @property
    def engine(self) -> RemoteEngine:
        """The speech pipeline, run in this process's inference process (models load lazily, on first use)."""
        if self._engine is None:
            from whisperx_api.pipeline.options import EngineConfig
            from whisperx_api.pipeline.remote import EngineProcess, RemoteEngine

            s = self.settings
            self._engine = RemoteEngine(
                EngineProcess.shared(s.effective_log_level, s.filter_warning, s.inference_recycle_growth_mb * 2**20),
                EngineConfig(
                    models_dir=s.resolved_models_dir,
                    hf_token=s.hf_token,
                    pyannote_pipeline=s.pyannote_pipeline,
                    max_concurrent=s.max_concurrent_gpu_tasks,
                    model_cache_size=s.model_cache_size,
                    model_idle_unload_s=s.model_idle_unload_s,
                ),
            )
        return self._engine

    @classmethod
    async def start(cls, settings: Settings, *, null_pool: bool = False) -> Runtime:
        """Connect to (or start) Redis, migrate the database if configured, open the queue."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        embedded = None
        redis_url = settings.redis_url
        if not redis_url:
            embedded = EmbeddedRedis(settings.data_dir / "redis")
            redis_url = embedded.start()
            embedded.supervise(settings.embedded_redis_restart_timeout_s)
            logger.info("REDIS_URL is unset: using embedded Redis at %s", redis_url)
        if settings.db_auto_migrate:
            await upgrade_database_async(settings)
        # A bounded pool whose callers wait for a free connection: redis-py's default pool refuses
        # the 101st concurrent command outright, which under a request flood failed admission
        # checks and let requests past the rate limiter, and opened connections by the hundred.
        pool = BlockingConnectionPool.from_url(
            redis_url, max_connections=settings.redis_max_connections, timeout=REDIS_POOL_WAIT_S
        )
        queue = TaskQueue(Redis.from_pool(pool), name=settings.queue_name)
        await queue.connect()
        return cls(
            settings=settings,
            db=make_db_config(settings, null_pool=null_pool),
            queue=queue,
            media=MediaStore(settings.media_dir),
            embedded_redis=embedded,
            null_pool=null_pool,
        )

    async def close(self) -> None:
        # each step runs even if an earlier one fails: shutdown must not hang on a dead dependency
        await self.events.hub.close()
        try:
            await asyncio.wait_for(self.queue.disconnect(), 5)
        except Exception:
            logger.warning("queue did not disconnect cleanly", exc_info=True)
        for engine in (self.db.get_engine(), self.reads):
            try:
                await engine.dispose()
            except Exception:
                logger.warning("database engine did not close cleanly", exc_info=True)
        if self.embedded_redis is not None:
            self.embedded_redis.stop()
