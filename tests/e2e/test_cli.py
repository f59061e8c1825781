"""The `whisperx-api` console script as an operator uses it."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from tests.support import BIN, REPO, clear_queue, descendants, free_port, make_settings, settings_env, start_server


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def test_database_upgrade_and_downgrade(tmp_path: Path) -> None:
    db = tmp_path / "records.db"
    env = {"PATH": "/usr/bin:/bin", "DB_URL": f"sqlite:///{db}", "DATA_DIR": str(tmp_path)}
    result = _cli("database", "upgrade", env=env)
    assert result.returncode == 0, result.stderr
    tables = {r[0] for r in sqlite3.connect(db).execute("select name from sqlite_master where type='table'")}
    assert {"task", "speaker", "alembic_version"} <= tables
    assert sqlite3.connect(db).execute("pragma journal_mode").fetchone()[0] == "wal"
    assert _cli("database", "downgrade", "base", env=env).returncode == 0
    tables = {r[0] for r in sqlite3.connect(db).execute("select name from sqlite_master where type='table'")}
    assert "task" not in tables


def test_bad_configuration_stops_with_the_variable_named(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DB_URL": "postgresql+psycopg2://u@h/db", "DATA_DIR": str(tmp_path)}
    for args in (("database", "upgrade"), ("run", "--port", "1"), ("workers", "run")):
        result = _cli(*args, env=env)
        assert result.returncode == 2
        assert "DB_URL" in result.stderr and "psycopg2" in result.stderr


def test_run_migrates_in_a_child_and_keeps_its_supervisor_light(tmp_path: Path) -> None:
    """`run` upgrades the database before the web processes start, in a process of its own: the
    supervising process lives as long as the service and never needs SQLAlchemy or Alembic (they
    stayed in it, about 50 MB, when it migrated itself)."""
    db = tmp_path / "records.db"
    settings = make_settings(tmp_path / "data", f"sqlite:///{db}")
    server = start_server(settings_env(settings), tmp_path / "server.log", free_port(), timeout=120)
    try:
        tables = {r[0] for r in sqlite3.connect(db).execute("select name from sqlite_master where type='table'")}
        assert {"task", "speaker", "alembic_version"} <= tables
        supervisor = Path(f"/proc/{server.proc.pid}/maps").read_text()
        assert "sqlalchemy" not in supervisor and "greenlet" not in supervisor
        web = [
            pid for pid in descendants(server.proc.pid) if "whisperx-api" in Path(f"/proc/{pid}/cmdline").read_text()
        ]
        assert web and all("sqlalchemy" in Path(f"/proc/{pid}/maps").read_text() for pid in web)
    finally:
        server.stop()
        clear_queue(settings.queue_name)
