"""`whisperx-api` console script: run the service, run workers, manage the database."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys

import click

from whisperx_api.settings import Settings, SettingsError, get_settings


def _settings_or_exit() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@click.group()
def main() -> None:
    """whisperx-api: speech-to-text service."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", "web_workers", default=1, show_default=True, type=int, help="web processes")
def run(host: str, port: int, web_workers: int) -> None:
    """Serve the API with granian; each web process also runs a queue worker unless WORKER_IN_PROCESS=false."""
    from granian.constants import Interfaces, Loops
    from granian.server import Server

    from whisperx_api.logging_setup import configure_logging
    from whisperx_api.redis_embedded import EmbeddedRedis

    settings = _settings_or_exit()
    configure_logging(settings)
    embedded = None
    if not settings.redis_url:
        # one embedded Redis for every web process: start it here and hand its URL down
        embedded = EmbeddedRedis(settings.data_dir / "redis")
        os.environ["REDIS_URL"] = embedded.start()
        embedded.supervise(settings.embedded_redis_restart_timeout_s)
    try:
        if settings.db_auto_migrate:
            _upgrade_in_a_child()
            os.environ["DB_AUTO_MIGRATE"] = "false"  # done once here, not raced by each process
        # granian's workers may be forked from this process: make them read the settings anew
        get_settings.cache_clear()
        Server(
            "whisperx_api.app:create_app",
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            # asyncio's loop, named: granian's "auto" takes uvloop (or rloop) when installed, and
            # their loops do not let the lifespan chain its drain in front of granian's stop
            # signal handler (signals.py), so a stop would wait for long requests instead of
            # ending them after SHUTDOWN_GRACE_S (tests/e2e/test_graceful_stop.py failed so)
            loop=Loops.asyncio,
            workers=web_workers,
            factory=True,
            log_access=False,
        ).serve()
    finally:
        if embedded is not None:
            embedded.stop()


def _upgrade_in_a_child() -> None:
    """`database upgrade` in a process of its own. This process supervises the web processes for
    the service's whole life: run here, the migration left SQLAlchemy, Alembic and the models in
    it (about 50 MB it never used again, in every deployment)."""
    upgraded = subprocess.run(
        [sys.executable, "-m", "whisperx_api.cli", "database", "upgrade"], stdout=subprocess.DEVNULL, check=False
    )
    if upgraded.returncode:  # its error is on stderr already
        sys.exit(upgraded.returncode)


@main.group()
def workers() -> None:
    """Queue workers without a web server (scale-out on GPU hosts)."""


@workers.command("run")
def workers_run() -> None:
    """Run a worker-only process against REDIS_URL and DB_URL until SIGINT/SIGTERM."""
    from whisperx_api.logging_setup import configure_logging
    from whisperx_api.runtime import Runtime
    from whisperx_api.transcription.jobs import shut_down, worker_runner
    from whisperx_api.transcription.service import TranscriptionService

    settings = _settings_or_exit()
    configure_logging(settings)
    if not settings.redis_url:
        logging.getLogger(__name__).warning(
            "REDIS_URL is unset: this worker starts its own embedded Redis, which no web process shares"
        )

    async def serve() -> None:
        runtime = await Runtime.start(settings)
        transcription = TranscriptionService(runtime)
        worker = worker_runner(transcription, in_process=True)
        worker.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await shut_down(transcription, worker, settings.shutdown_grace_s)
        await runtime.close()

    asyncio.run(serve())


@main.group()
def speakers() -> None:
    """The speaker library."""


@speakers.command("reembed")
@click.option("--dry-run", is_flag=True, help="only say what would be done")
def speakers_reembed(dry_run: bool) -> None:
    """Recompute stored voices with the current speaker encoder (from their kept enrolment
    recordings); list the voices that must be enrolled again."""
    from whisperx_api.logging_setup import configure_logging
    from whisperx_api.runtime import Runtime
    from whisperx_api.transcription.reembed import reembed

    settings = _settings_or_exit()
    configure_logging(settings)

    async def run_it() -> int:
        runtime = await Runtime.start(settings)
        try:
            report = await reembed(runtime, dry_run=dry_run)
        finally:
            runtime.engine.process.stop()
            await runtime.close()
        verb = "would re-embed" if dry_run else "re-embedded"
        for voice in report.done:
            click.echo(f"{verb}: {voice.label} ({voice.id}): {voice.encoder_model} -> {report.encoder_model}")
        for voice, why in report.to_enrol_again:
            click.echo(f"enrol again: {voice.label} ({voice.id}), {voice.encoder_model}: {why}")
        click.echo(
            f"{len(report.done)} {verb}, {len(report.to_enrol_again)} to enrol again, "
            f"{report.current} already made by {report.encoder_model}"
        )
        return 1 if report.to_enrol_again else 0

    sys.exit(asyncio.run(run_it()))


@main.group()
def database() -> None:
    """Alembic migrations."""


@database.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def database_upgrade(revision: str) -> None:
    from whisperx_api.db.config import upgrade_database

    upgrade_database(_settings_or_exit(), revision)
    click.echo(f"database upgraded to {revision}")


@database.command("downgrade")
@click.argument("revision")
def database_downgrade(revision: str) -> None:
    from whisperx_api.db.config import downgrade_database

    downgrade_database(_settings_or_exit(), revision)
    click.echo(f"database downgraded to {revision}")


if __name__ == "__main__":
    main()
