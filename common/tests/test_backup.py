"""`manage.py backup` and `manage.py restore`: a real pg_dump of the test database restored into a
fresh empty database on the same embedded PostgreSQL, compared table by table."""

from __future__ import annotations

import hashlib
import uuid

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.tests.factories import user_make
from chat.seed import assistants_seed
from chat.services import message_user_create
from chat.tests.factories import conversation_make
from common.backup import Target

pytestmark = [pytest.mark.django_db(transaction=True)]


def _counts(target: Target) -> dict[str, int]:
    conninfo = {"dbname": target.name, "host": target.host, "port": target.port, "user": target.user,
                "password": target.password or None}
    with psycopg.connect(**{k: v for k, v in conninfo.items() if v}, autocommit=True) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")]
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}


@pytest.fixture
def empty_database():
    source = Target.from_settings()
    name = f"{source.name}_restore_{uuid.uuid4().hex[:6]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Target(host=source.host, port=source.port, user=source.user, password=source.password, name=name)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_backup_then_restore_into_an_empty_database_gives_the_same_rows(tmp_path, empty_database, capsys):
    assistants_seed()  # transactional tests start from empty tables
    user = user_make()
    conversation = conversation_make(user=user)
    for text in ("first", "second", "third"):
        message_user_create(conversation=conversation, text=text, via="text")
    models = tmp_path / "models"
    (models / "tiny").mkdir(parents=True)
    (models / "tiny" / "model.bin").write_bytes(b"weights" * 1000)
    manifest = b'{"name": "tiny"}'
    (models / "tiny" / "parley-model.json").write_bytes(manifest)

    call_command("backup", output=str(tmp_path / "backups"), models_dir=str(models))

    dumps = list((tmp_path / "backups").glob("parley-*.dump"))
    assert len(dumps) == 1 and dumps[0].read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    checksums = dumps[0].with_suffix(".models.sha256").read_text().splitlines()
    assert checksums == [f"{hashlib.sha256(b'weights' * 1000).hexdigest()}  tiny/model.bin",
                         f"{hashlib.sha256(manifest).hexdigest()}  tiny/parley-model.json"]

    url = (f"postgres://{empty_database.user}@/{empty_database.name}"
           f"?host={empty_database.host}&port={empty_database.port}")
    (models / "tiny" / "model.bin").write_bytes(b"other weights")  # the model changed since the backup
    call_command("restore", str(dumps[0]), database_url=url, models_dir=str(models))

    source, restored = _counts(Target.from_settings()), _counts(empty_database)
    assert restored == source
    assert source["public.chat_message"] == 3 and source["public.accounts_user"] >= 1
    out = capsys.readouterr()
    assert "1 files match" in out.out and "models changed: tiny/model.bin" in out.err

    with pytest.raises(CommandError, match="already has .* tables; restore only into an empty database"):
        call_command("restore", str(dumps[0]), database_url=url, models_dir=str(models))


def test_restore_of_a_missing_file_says_so(tmp_path):
    with pytest.raises(CommandError, match="No such backup file"):
        call_command("restore", str(tmp_path / "nope.dump"))
