from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from common.backup import Target, backup_restore, models_verify
from common.errors import ApplicationError
from config import services


class Command(BaseCommand):
    help = ("Restore a `manage.py backup` dump into an empty database (the configured one, or --database-url), "
            "then compare the backup's model checksums with var/models.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="The .dump written by `manage.py backup`.")
        parser.add_argument("--database-url", default="",
                            help="postgres://… of the empty database to restore into (default: DATABASE_URL).")
        parser.add_argument("--models-dir", default=str(services.VAR_DIR / "models"))

    def handle(self, *args: object, file: str, database_url: str, models_dir: str, **options: object) -> None:
        dump = Path(file)
        target = Target.from_url(database_url) if database_url else Target.from_settings()
        try:
            backup_restore(dump=dump, target=target)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"restored {dump} into database {target.name!r}")
        checksums = dump.with_suffix(".models.sha256")
        if not checksums.exists():
            self.stdout.write(f"no model checksums beside the dump ({checksums.name}); models not compared")
            return
        result = models_verify(checksums, Path(models_dir))
        self.stdout.write(f"models: {len(result['ok'])} files match the backup")
        for key in ("changed", "missing"):
            if result[key]:
                self.stderr.write(self.style.WARNING(
                    f"models {key}: {', '.join(result[key][:10])}{' …' if len(result[key]) > 10 else ''} "
                    "(run `manage.py models_install` to prepare them again)"))
