"""The embedded-services launcher, run as operators run it, against a throwaway var/ dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import services

BASE_DIR = Path(__file__).resolve().parents[2]


def _services(var_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["PARLEY_VAR_DIR"] = str(var_dir)
    return subprocess.run(
        [sys.executable, "-m", "config.services", *args],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )


def _one_clear_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_var_that_is_a_file_gets_one_clear_line(tmp_path):
    var = tmp_path / "var"
    var.write_text("oops")

    line = _one_clear_line(_services(var, "up"))

    assert "is not a directory" in line
    assert "mv " in line


def test_pg_dir_that_is_not_a_database_gets_one_clear_line(tmp_path):
    (tmp_path / "var" / "pg").mkdir(parents=True)
    (tmp_path / "var" / "pg" / "junk").write_text("x")

    line = _one_clear_line(_services(tmp_path / "var", "up"))

    assert "not a PostgreSQL data directory" in line


def test_port_in_use_gets_one_clear_line(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]

        line = _one_clear_line(_services(tmp_path / "var", "port-free", str(port)))

    assert f"port {port} is already in use" in line


def test_restart_keeps_data_cleans_stale_pids_and_reports_a_failed_start(tmp_path):
    var = tmp_path / "var"
    try:
        assert _services(var, "up").returncode == 0
        assert _services(var, "down").returncode == 0

        # A crash leaves pid files behind that point at dead processes.
        (var / "pg" / "postmaster.pid").write_text("999999\n" + str(var / "pg") + "\n0\n5432\n\n\n\nready\n")
        (var / "redis" / "redis.pid").write_text("999999\n")
        result = _services(var, "up")
        assert result.returncode == 0, result.stderr
        assert "removing stale" in result.stdout
        assert "postmaster.pid" in result.stdout and "redis.pid" in result.stdout
        assert _services(var, "down").returncode == 0

        # A broken config makes PostgreSQL refuse to start: one line, with the log's reason.
        with (var / "pg" / "postgresql.conf").open("a") as conf:
            conf.write("\nshared_buffers = lots\n")
        line = _one_clear_line(_services(var, "up"))
        assert line.startswith("parley: PostgreSQL failed to start")
        assert "shared_buffers" in line
    finally:
        _services(var, "down")


@pytest.mark.django_db
def test_the_suite_runs_on_the_embedded_postgres_and_redis():
    from django.conf import settings
    from django.db import connection

    if os.environ.get("DATABASE_URL"):
        pytest.skip("DATABASE_URL points at an external server")
    assert connection.settings_dict["HOST"] == services.postgres_info().socket_dir
    assert str(services.redis_port()) in settings.REDIS_URL
