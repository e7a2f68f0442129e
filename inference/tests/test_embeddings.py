"""The MiniLM embedder's runtimes, against the real bundled weights and the int8 graph setup prepares.

The int8 graph must stand in for the fp32 model whose vectors are already stored, so it is compared with
fp32 on fixed passages; it must load with the network cut off, and a damaged graph must fail its checksum.
"""

from __future__ import annotations

import contextlib
import os
import pydoc_data.topics
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from inference import install
from inference.backends.base import BackendError, SpecConfig
from inference.backends.embeddings import SentenceTransformersBackend, embed_runtime
from inference.catalog import BUNDLED
from inference.install import ONNX_INT8, model_manifest, model_prepare

NAME = "all-minilm-l6-v2"
# Passages of ~650 characters, the size ingest cuts, from CPython's own topic help.
PASSAGES = [pydoc_data.topics.topics[topic][:650] for topic in
            ("with", "try", "for", "while", "lambda", "class", "import", "exceptions", "slicings", "assignment")]


def _spec(path: Path, **params: object) -> SpecConfig:
    return SpecConfig(name=NAME, task="embed", backend="sentence_transformers", source=f"package:{NAME}",
                      quantization="float32", params={**BUNDLED[NAME].params, **params}, path=path)


def _backend(monkeypatch: pytest.MonkeyPatch, runtime: str, **params: object) -> SentenceTransformersBackend:
    monkeypatch.setenv("PARLEY_EMBED_RUNTIME", runtime)
    backend = SentenceTransformersBackend(_spec(model_prepare(NAME).path, **params), "cpu")
    backend.load()
    return backend


@contextlib.contextmanager
def _network_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Hub libraries told to stay offline, and any connect() that still happens refused (and recorded)."""
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object, *args: object) -> None:
        attempts.append(address)
        raise OSError(f"network is off in this test (connect to {address!r})")

    with monkeypatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        yield attempts


@pytest.fixture(scope="module")
def fp32_vectors() -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_prepare(NAME).path), device="cpu", local_files_only=True)
    return model.encode(PASSAGES, normalize_embeddings=True, convert_to_numpy=True)


def test_int8_loads_offline_and_agrees_with_fp32(monkeypatch: pytest.MonkeyPatch, fp32_vectors: np.ndarray) -> None:
    model_prepare(NAME, artifact=ONNX_INT8)  # what setup (models_install) does
    with _network_off(monkeypatch) as attempts:
        backend = _backend(monkeypatch, "onnx-int8")
        vectors, tokens = backend.embed(PASSAGES)
    assert attempts == []
    assert backend.runtime == "onnx-int8" and backend.session is not None and backend.model is None
    assert vectors.shape == (len(PASSAGES), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = (vectors * fp32_vectors).sum(axis=1)
    assert cosine.min() >= 0.99, cosine
    # The billed count is the tokenizer's, whichever runtime embeds.
    assert tokens == _backend(monkeypatch, "torch").embed(PASSAGES)[1] > 100 * len(PASSAGES)


def test_auto_serves_int8_on_a_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARLEY_EMBED_RUNTIME", raising=False)
    assert embed_runtime("cpu") == "onnx-int8"
    assert embed_runtime("cpu", onnx_available=False) == "torch"  # a model setup has no int8 graph for
    assert embed_runtime("cuda") == "torch-fp16"


def test_batches_sorted_by_length_come_back_in_the_callers_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # Lengths from 2 to ~650 characters, shuffled, in batches of 3: sorting moves texts across batches.
    texts = ["Hi.", PASSAGES[0], "A lambda is a small anonymous function.", PASSAGES[4], PASSAGES[1][:200],
             "Loops", PASSAGES[6][:400]]
    backend = _backend(monkeypatch, "onnx-int8", batch_size=3)
    together, _ = backend.embed(texts)
    alone = np.stack([backend.embed([text])[0][0] for text in texts])
    similarity = together @ alone.T
    assert list(similarity.argmax(axis=1)) == list(range(len(texts)))
    # Not identical: int8 activations are scaled per batch, so a vector moves a little with its batch-mates
    # (a 3-character text among longer ones the most, ~0.98).
    assert np.diag(similarity).min() >= 0.95


def test_the_runtime_switch_serves_fp32_when_asked(monkeypatch: pytest.MonkeyPatch, fp32_vectors: np.ndarray) -> None:
    backend = _backend(monkeypatch, "torch")
    assert backend.runtime == "torch" and backend.session is None
    vectors, _ = backend.embed(PASSAGES)
    np.testing.assert_allclose(vectors, fp32_vectors, atol=1e-5)


@pytest.mark.parametrize("runtime", ["onnx", "torch-fp16"])
def test_a_runtime_the_machine_cannot_serve_is_refused(monkeypatch: pytest.MonkeyPatch, runtime: str) -> None:
    with pytest.raises(BackendError) as raised:
        _backend(monkeypatch, runtime)
    assert raised.value.code == "bad_config" and runtime in raised.value.message


def test_a_damaged_or_missing_int8_graph_fails_its_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install, "MODELS_DIR", tmp_path / "models")
    # Built for real, in a scratch models dir, with the network cut off: setup never reaches a hub.
    with _network_off(monkeypatch) as attempts:
        prepared = model_prepare(NAME, artifact=ONNX_INT8)
    assert attempts == []
    manifest = model_manifest(NAME, ONNX_INT8)
    assert manifest["sha256"] == install.sha256_file(prepared.path / "model.onnx")
    assert manifest["source_sha256"] == model_manifest(NAME)["sha256"]  # exported from the installed weights
    _backend(monkeypatch, "onnx-int8")  # intact: loads

    graph = prepared.path / "model.onnx"
    stat = graph.stat()
    with open(graph, "r+b") as f:  # one flipped byte in a weight, size and mtime kept: only the hash can tell
        f.seek(stat.st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(graph, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(BackendError) as raised:
        _backend(monkeypatch, "onnx-int8")
    assert raised.value.code == "checksum_mismatch"
    assert "corrupt" in raised.value.message and f"models_install --force {NAME}" in raised.value.message

    graph.unlink()
    with pytest.raises(BackendError) as raised:
        _backend(monkeypatch, "onnx-int8")
    assert raised.value.code == "checksum_mismatch" and "missing" in raised.value.message

    shutil.rmtree(prepared.path)  # never prepared here: the first load builds it
    assert _backend(monkeypatch, "onnx-int8").session is not None


def test_setup_prepares_the_int8_graph_for_embedders_only() -> None:
    assert install.model_artifacts(NAME) == ["", ONNX_INT8]
    assert install.model_artifacts("qwen2.5-coder-0.5b") == [install.GGUF, ""]
    with pytest.raises(install.ModelInstallError, match="has no 'onnx-int8' artifact"):
        model_prepare("whisper-tiny.en", artifact=ONNX_INT8)
