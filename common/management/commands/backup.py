from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from common.backup import backup_create
from common.errors import ApplicationError
from config import services


class Command(BaseCommand):
    help = ("Back up Parley: a custom-format pg_dump of the database and sha256 checksums of var/models "
            "(restore with `manage.py restore FILE`).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", default=str(services.VAR_DIR / "backups"),
                            help="A directory (a timestamped name is chosen) or a path ending in .dump.")
        parser.add_argument("--models-dir", default=str(services.VAR_DIR / "models"),
                            help="The prepared models whose checksums go with the dump.")

    def handle(self, *args: object, output: str, models_dir: str, **options: object) -> None:
        try:
            backup = backup_create(output=Path(output), models_dir=Path(models_dir))
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        size = backup.dump.stat().st_size / 1e6
        self.stdout.write(f"database: {backup.dump} ({size:.1f} MB)")
        self.stdout.write(f"models:   {backup.checksums} ({backup.models} files)")
