"""Native inference engines Parley builds once at setup: llama.cpp's `llama-server`, cached in var/engines.

The binary is compiled from the llama.cpp tree vendored in the llama-cpp-python sdist on PyPI (the one
registry a self-hosted box can reach). A build takes about 8 minutes on 2 cores, so the result is a
checksummed cache keyed by the package version and the cmake flags:

    var/engines/llama-server-<version>-<key>/bin/llama-server
    var/engines/llama-server-<version>-<key>/parley-engine.json   (version, flags, sha256, size, ...)
    var/engines/llama-server-build.log                             (the last build's output)

Order of a build: lock → download sdist → extract → cmake configure → build → smoke test → manifest →
rename the staging dir into place. A crash at any step leaves either no cache entry or a complete one.
Works with or without Django set up.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

try:
    from config import services
except ImportError:
    # Run as a script (`python inference/engines.py build`) by make while pip is still installing the
    # venv: importing the config package would need Celery, so load its stdlib-only services module by path.
    import importlib.util

    _spec = importlib.util.spec_from_file_location(
        "parley_config_services", Path(__file__).resolve().parent.parent / "config" / "services.py")
    services = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = services
    _spec.loader.exec_module(services)

logger = logging.getLogger(__name__)

ENGINES_DIR = services.VAR_DIR / "engines"
MANIFEST = "parley-engine.json"
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
# Static libs make the binary independent of the (deleted) build tree.
_BASE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_CURL=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
)
_AVX512 = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"})

Progress = Callable[[str, float], None]


class EngineInstallError(Exception):
    """An engine could not be built or verified; the message says what to do about it."""


# --------------------------------------------------------------------------- public API


def llama_server_install(*, force: bool = False, progress: Progress | None = None) -> Path:
    """Build llama-server into the cache once (about 8 minutes) and return the verified binary."""
    report = progress or _no_progress
    ENGINES_DIR.mkdir(parents=True, exist_ok=True)
    if not force and (cached := _llama_server_cached()) is not None:
        report("cached", 1.0)
        return cached
    _toolchain_check()
    # The management command and a test run may both get here; the second waits and takes the cache.
    with _lock("llama-server", report):
        if not force and (cached := _llama_server_cached()) is not None:
            report("cached", 1.0)
            return cached
        _clean_stale_staging()
        staging = ENGINES_DIR / f".tmp-llama-server-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            started = time.monotonic()
            source = _llama_cpp_source(staging, report)
            binary = _llama_server_build(source, staging / "build", report)
            out = staging / "out"
            (out / "bin").mkdir(parents=True)
            shutil.copy2(binary, out / "bin" / "llama-server")
            _static_check(out / "bin" / "llama-server")
            version = _smoke_test(out / "bin" / "llama-server")
            report("checksum", 0.0)
            manifest = {
                "engine": "llama-server",
                "llama_cpp_python": LLAMA_CPP_PYTHON_VERSION,
                "llama_cpp_build": version,
                "cmake_flags": list(llama_server_cmake_flags()),
                "binary": "bin/llama-server",
                "sha256": sha256_file(out / "bin" / "llama-server"),
                "size": (out / "bin" / "llama-server").stat().st_size,
                "build_seconds": round(time.monotonic() - started, 1),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            _swap_into_place(out, llama_server_dir())
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    path = _llama_server_cached()
    if path is None:  # only if something rewrote the files between our write and this read
        raise EngineInstallError("llama-server was built but does not match its manifest; run the build again.")
    report("done", 1.0)
    return path


def llama_server_path() -> Path | None:
    """The cached llama-server binary if it exists and its sha256 matches the manifest, else None."""
    return _llama_server_cached()


def llama_server_verify() -> Path:
    """The cached binary, or EngineInstallError saying whether it is missing or altered."""
    manifest = llama_server_manifest()
    if manifest is None:
        raise EngineInstallError(
            "llama-server is not built yet. Run `manage.py models_install` (the first build takes about 8 minutes)."
        )
    binary = llama_server_dir() / manifest["binary"]
    if not binary.is_file():
        raise EngineInstallError(f"{binary} is missing; rebuild it with `manage.py models_install --force-engine`.")
    actual = sha256_file(binary)
    if actual != manifest["sha256"]:
        raise EngineInstallError(
            f"{binary} has sha256 {actual[:12]}…, expected {manifest['sha256'][:12]}…: the file was altered. "
            "Rebuild it with `manage.py models_install --force-engine`."
        )
    return binary


def llama_server_manifest() -> dict[str, Any] | None:
    """The manifest of the build matching this version and these flags, or None."""
    try:
        manifest = json.loads((llama_server_dir() / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    flags = list(llama_server_cmake_flags())
    if manifest.get("llama_cpp_python") != LLAMA_CPP_PYTHON_VERSION or manifest.get("cmake_flags") != flags:
        return None
    return manifest


def llama_server_cmake_flags(cpu_flags: frozenset[str] | None = None) -> tuple[str, ...]:
    """The cmake flags for this machine's CPU.

    Not GGML_NATIVE: the native build detects AMX on some Intel CPUs and dies with a general protection
    fault at the first completion, so AMX stays off. Not a fixed AVX-512 list either: on a CPU without
    AVX-512 (AMD EPYC before Zen 4, many desktops) that binary dies of SIGILL at model load. The flags are
    part of the cache key, so a var/ moved to another kind of CPU gets its own build.
    """
    cpu = _cpu_flags() if cpu_flags is None else cpu_flags
    avx512 = _AVX512 <= cpu

    def on(flag: bool) -> str:
        return "ON" if flag else "OFF"

    return (
        *_BASE_FLAGS,
        f"-DGGML_AVX2={on('avx2' in cpu)}",
        f"-DGGML_FMA={on('fma' in cpu)}",
        f"-DGGML_F16C={on('f16c' in cpu)}",
        f"-DGGML_AVX512={on(avx512)}",
        f"-DGGML_AVX512_VNNI={on(avx512 and 'avx512_vnni' in cpu)}",
        "-DGGML_AMX_TILE=OFF",
        "-DGGML_AMX_INT8=OFF",
    )


def _cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset({"avx2", "fma", "f16c"})  # not Linux /proc: assume a common x86-64 of the last decade


def llama_server_dir() -> Path:
    """The cache entry for this version and these flags; other versions' entries sit beside it."""
    return ENGINES_DIR / f"llama-server-{LLAMA_CPP_PYTHON_VERSION}-{_build_key()}"


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- cache


def _no_progress(stage: str, fraction: float) -> None:
    pass


def _build_key() -> str:
    material = json.dumps({"version": LLAMA_CPP_PYTHON_VERSION, "flags": llama_server_cmake_flags()})
    return hashlib.sha256(material.encode()).hexdigest()[:12]


def _llama_server_cached() -> Path | None:
    # A full sha256 every time: the binary is a few MB (milliseconds), and a swapped binary is code we'd run.
    try:
        return llama_server_verify()
    except EngineInstallError as exc:
        if llama_server_manifest() is not None:
            logger.warning("llama-server cache is unusable: %s", exc)
        return None


def _swap_into_place(out: Path, target: Path) -> None:
    old = target.with_name(f".old-{target.name}-{os.getpid()}")
    if target.exists():
        os.rename(target, old)
    os.rename(out, target)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _lock(name: str, report: Progress | None = None) -> Iterator[None]:
    """Hold the build lock; while another process builds (make's background build, started as soon as the
    venv exists), show that build's progress from its log instead of sitting silent."""
    with open(ENGINES_DIR / f".{name}.lock", "w") as f:
        shown = None
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if report is not None and (done := _logged_progress()) != shown:
                    report("waiting: build in progress", done)
                    shown = done
                time.sleep(2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _clean_stale_staging() -> None:
    """Remove build trees left by a process that died mid-build (each is about 1 GB)."""
    for stale in ENGINES_DIR.glob(".tmp-llama-server-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- build steps


def _toolchain_check() -> None:
    if shutil.which("cmake") is None:
        raise EngineInstallError(
            "Building llama-server needs cmake, which is not installed. Install it with "
            "`sudo apt-get install cmake` (or skip the engine with `manage.py models_install --no-engine`)."
        )
    if shutil.which("c++") is None and shutil.which("g++") is None:
        raise EngineInstallError(
            "Building llama-server needs a C++ compiler. Install one with `sudo apt-get install build-essential`."
        )


def _run_logged(command: list[str], log: Path, cwd: Path | None = None,
                on_line: Callable[[str], None] | None = None) -> None:
    """Run a build step, appending its output to the log; on failure raise with the last lines of it."""
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        tail: list[str] = []
        for line in process.stdout:
            out.write(line)
            tail = (tail + [line.rstrip()])[-15:]
            if on_line is not None:
                on_line(line)
        code = process.wait()
    if code != 0:
        raise EngineInstallError(
            f"`{' '.join(command[:4])} …` failed with exit code {code}; the full output is in {log}. Last lines:\n"
            + "\n".join(tail)
        )


def _build_log() -> Path:
    return ENGINES_DIR / "llama-server-build.log"


def _llama_cpp_source(staging: Path, report: Progress) -> Path:
    """Fetch the llama-cpp-python sdist from PyPI and return its vendored llama.cpp tree."""
    log = _build_log()
    log.write_text(f"llama-server build {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
    report("download llama.cpp", 0.0)
    downloads = staging / "sdist"
    # --no-binary for this one package only: `:all:` would also force scikit-build-core and its whole
    # dependency tree to build from source, recursively, just so pip can read the sdist's metadata.
    _run_logged(
        [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
         "--no-binary", "llama-cpp-python", f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", str(downloads)],
        log,
    )
    sdists = sorted(downloads.glob("llama_cpp_python-*.tar.gz"))
    if len(sdists) != 1:
        raise EngineInstallError(f"pip download left {len(sdists)} llama-cpp-python sdists in {downloads}; see {log}.")
    report("download llama.cpp", 1.0)
    report("extract", 0.0)
    with tarfile.open(sdists[0]) as tar:
        tar.extractall(staging / "src", filter="data")
    roots = [p for p in (staging / "src").iterdir() if p.is_dir()]
    vendored = roots[0] / "vendor" / "llama.cpp" if len(roots) == 1 else None
    if vendored is None or not (vendored / "CMakeLists.txt").is_file():
        raise EngineInstallError(f"The llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist has no vendor/llama.cpp.")
    report("extract", 1.0)
    return vendored


_PERCENT = re.compile(r"^\[\s*(\d+)%\]")


def _logged_progress() -> float:
    """How far the build writing the log has compiled (0 before it compiles anything)."""
    try:
        with open(_build_log(), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            tail = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return 0.0
    for line in reversed(tail):
        if match := _PERCENT.match(line):
            return int(match.group(1)) / 100
    return 0.0


def _llama_server_build(source: Path, build: Path, report: Progress) -> Path:
    log = _build_log()
    report("configure", 0.0)
    _run_logged(["cmake", "-S", str(source), "-B", str(build), *llama_server_cmake_flags()], log)
    report("compile", 0.0)

    def on_line(line: str) -> None:
        if match := _PERCENT.match(line):
            report("compile", int(match.group(1)) / 100)

    jobs = str(os.cpu_count() or 2)
    _run_logged(["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs], log, on_line=on_line)
    binary = build / "bin" / "llama-server"
    if not binary.is_file():
        raise EngineInstallError(f"The build finished but {binary} is missing; see {log}.")
    return binary


def _static_check(binary: Path) -> None:
    """The cache entry must not depend on the deleted build tree: no libllama/libggml shared objects."""
    if shutil.which("ldd") is None:
        return
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    linked = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    ours = [lib for lib in linked if lib.startswith(("libllama", "libggml", "libmtmd"))]
    if ours:
        raise EngineInstallError(
            f"llama-server links shared {', '.join(ours)}; it must be built with BUILD_SHARED_LIBS=OFF."
        )


def _smoke_test(binary: Path) -> str:
    """Run `--version` so a binary that cannot start on this CPU fails here, not at the first chat."""
    try:
        result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired as exc:
        raise EngineInstallError(f"{binary} --version did not finish in 30 s.") from exc
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise EngineInstallError(f"{binary} --version failed (exit {result.returncode}): {output[-500:]}")
    match = re.search(r"version:\s*(\S+.*)", output)
    return match.group(1).strip() if match else output.splitlines()[0] if output else ""


def main(argv: list[str]) -> int:
    """`python inference/engines.py build`: build llama-server if it is not cached (make starts this in the
    background as soon as the venv exists, while it installs everything else; `models_install` then waits for
    it). Exit 0 either way:
    a failed build is reported by `models_install`, which falls back to CTranslate2."""
    if argv != ["build"]:
        print("usage: python -P inference/engines.py build  (or: python -m inference.engines build)", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        path = llama_server_install()
    except (EngineInstallError, OSError) as exc:
        print(f"llama-server: background build failed: {exc}", flush=True)
        return 0
    print(f"llama-server: ready after {time.monotonic() - started:.0f} s: {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
