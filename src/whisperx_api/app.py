"""create_app(): one Litestar application wiring settings, runtime, routes and error handlers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import ValidationException
from litestar.types import ASGIApp

from whisperx_api.errors import exception_handlers
from whisperx_api.health.controllers import HealthController
from whisperx_api.jobs.worker import WorkerRunner
from whisperx_api.logging_setup import configure_logging
from whisperx_api.memory import freeze_long_lived
from whisperx_api.openai_api.controllers import OpenAIController
from whisperx_api.openapi import close_request_bodies, document_errors, openapi_config
from whisperx_api.parameters import check_parameters, handle_validation
from whisperx_api.request_id import add_request_id
from whisperx_api.runtime import Runtime
from whisperx_api.security.admission import admission_gate
from whisperx_api.security.auth import bearer_auth
from whisperx_api.security.rate_limit import rate_limit
from whisperx_api.settings import Settings, get_settings
from whisperx_api.signals import before_stop_signals
from whisperx_api.speaker_library.library import SpeakerLibrary
from whisperx_api.speakers.controllers import SpeakerController
from whisperx_api.tasks.reads import TaskReader
from whisperx_api.transcription.controllers import ServiceController, SpeechController
from whisperx_api.transcription.jobs import shut_down, worker_runner
from whisperx_api.transcription.service import TranscriptionService
from whisperx_api.transcription.task_controller import TaskController
from whisperx_api.web.assets import asset_routers, docs_render_plugins
from whisperx_api.web.page import transcription_page

logger = logging.getLogger(__name__)

# Uploads are streamed to disk; the cap that matters is MAX_UPLOAD_SIZE_MB (safeguards).
UNLIMITED_BODY = 1 << 62


def provide_runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


def provide_settings(state: State) -> Settings:
    settings: Settings = state.runtime.settings
    return settings


def provide_transcription(state: State) -> TranscriptionService:
    service: TranscriptionService = state.transcription
    return service


def provide_library(state: State) -> SpeakerLibrary:
    library: SpeakerLibrary = state.runtime.speakers
    return library


def provide_tasks(state: State) -> TaskReader:
    tasks: TaskReader = state.tasks
    return tasks


def provide_worker(state: State) -> WorkerRunner | None:
    worker: WorkerRunner | None = state.worker
    return worker


DEPENDENCIES = {
    "runtime": Provide(provide_runtime, sync_to_thread=False),
    "settings": Provide(provide_settings, sync_to_thread=False),
    "transcription": Provide(provide_transcription, sync_to_thread=False),
    "library": Provide(provide_library, sync_to_thread=False),
    "worker": Provide(provide_worker, sync_to_thread=False),
    "tasks": Provide(provide_tasks, sync_to_thread=False),
}


def safeguards(settings: Settings) -> list[Callable[[ASGIApp], ASGIApp]]:
    """Outermost first: rate limit, then auth, then admission (all off by default)."""
    layers: list[Callable[[ASGIApp], ASGIApp]] = []
    if settings.rate_limit.enabled:
        layers.append(rate_limit(settings))
    if settings.auth.enabled:
        layers.append(bearer_auth(settings.auth.bearer_token))
    if settings.max_queued_gpu_requests:
        layers.append(admission_gate)
    return layers


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        runtime = await Runtime.start(settings)
        transcription = TranscriptionService(runtime)
        worker = worker_runner(transcription, in_process=True) if settings.worker_in_process else None
        app.state.runtime, app.state.transcription, app.state.worker = runtime, transcription, worker
        app.state.tasks = transcription.reads
        freeze_long_lived()
        if worker is not None:
            worker.start()
        stopping: list[asyncio.Task[None]] = []

        def begin_shutdown() -> None:  # once, on the first stop signal or at the lifespan's end
            if not stopping:
                stopping.append(asyncio.ensure_future(shut_down(transcription, worker, settings.shutdown_grace_s)))

        before_stop_signals(asyncio.get_running_loop(), begin_shutdown)
        try:
            yield
        finally:
            begin_shutdown()
            try:
                await stopping[0]
            except Exception:
                logger.exception("the service did not drain cleanly")
            await runtime.close()

    app = Litestar(
        route_handlers=[
            transcription_page,
            *asset_routers(),
            HealthController,
            TaskController,
            SpeechController,
            ServiceController,
            OpenAIController,
            SpeakerController,
        ],
        dependencies=DEPENDENCIES,
        lifespan=[lifespan],
        exception_handlers={**exception_handlers, ValidationException: handle_validation},
        before_request=check_parameters,
        before_send=[add_request_id],
        middleware=safeguards(settings),
        security=[{"BearerToken": []}] if settings.auth.enabled else None,
        openapi_config=openapi_config(version("whisperx-api"), docs_render_plugins()),
        request_max_body_size=settings.max_upload_bytes or UNLIMITED_BODY,
        debug=False,
    )
    document_errors(app, error_statuses(settings))
    close_request_bodies(app)
    return app


def error_statuses(settings: Settings) -> list[int]:
    """What any operation may answer besides its own errors: malformed requests, invalid or
    unknown parameters, an internal error, a dependency down; and the safeguards that are on."""
    statuses = [400, 422, 500, 503]
    if settings.auth.enabled:
        statuses.append(401)
    if settings.rate_limit.enabled:
        statuses.append(429)
    if settings.max_upload_bytes:
        statuses.append(413)
    return statuses
