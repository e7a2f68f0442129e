"""Sentence embeddings: int8 ONNX on a CPU, PyTorch (fp32, or fp16 on CUDA) when asked or on a GPU.

PARLEY_EMBED_RUNTIME picks the engine: `auto` (the default: int8 ONNX on a CPU, PyTorch fp16 on CUDA),
`onnx-int8`, `torch` (fp32) or `torch-fp16` (CUDA only). The int8 graph is prepared at setup from the
installed weights (inference.install, artifact "onnx-int8") and checked against its manifest's sha256 on
every load, so a damaged file fails loudly instead of giving wrong vectors.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from inference.backends.base import Backend, BackendError
from inference.devices import cpu_threads

logger = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnx-int8", "torch", "torch-fp16")
BATCH_SIZE = 32  # PyTorch's
# Rows per ONNX run. Small batches are faster per CPU-second (the feed-forward activations of 8 passages
# stay in cache; 32 do not) and agree better with fp32 (int8 activations get one scale per batch). Measured on
# pydoc passages of ~640 characters, 2 threads: 8 rows 33 passages/CPU-s (cosine min 0.994), 16 rows 28,
# 32 rows 23 (0.990).
ONNX_BATCH_SIZE = 8
# The count that is billed: tokens up to the tokenizer's own limit (what this backend always reported),
# of which the first max_seq_length are embedded, as sentence-transformers does.
COUNT_LIMIT = 512


def embed_runtime(device: str, *, onnx_available: bool = True) -> str:
    """The engine PARLEY_EMBED_RUNTIME asks for on `device`, with `auto` resolved."""
    runtime = (os.environ.get("PARLEY_EMBED_RUNTIME") or "auto").strip().lower()
    if runtime not in RUNTIMES:
        raise BackendError(f"PARLEY_EMBED_RUNTIME={runtime!r} is not one of {', '.join(RUNTIMES)}.",
                           code="bad_config", retryable=False)
    if runtime == "torch-fp16" and device != "cuda":
        raise BackendError("PARLEY_EMBED_RUNTIME=torch-fp16 needs a CUDA device; use torch or onnx-int8 on a CPU.",
                           code="bad_config", retryable=False)
    if runtime != "auto":
        return runtime
    if device == "cuda":
        return "torch-fp16"
    return "onnx-int8" if onnx_available else "torch"


class SentenceTransformersBackend(Backend):
    task = "embed"

    def load(self) -> None:
        self.bundled = _bundled_name(self.spec.source)
        self.runtime = embed_runtime(self.device, onnx_available=self.bundled is not None)
        self.lock = threading.Lock()
        self.max_seq_length = int(self.spec.params.get("max_seq_length") or 256)
        self.batch_size = int(self.spec.params.get("batch_size")
                              or (ONNX_BATCH_SIZE if self.runtime == "onnx-int8" else BATCH_SIZE))
        self.session = self.model = None
        if self.runtime == "onnx-int8":
            self._load_onnx()
        else:
            self._load_torch()

    def _load_torch(self) -> None:
        from sentence_transformers import SentenceTransformer

        device = "cuda" if self.runtime == "torch-fp16" else self.device
        try:
            self.model = SentenceTransformer(str(self.spec.path), device=device, local_files_only=True)
        except (RuntimeError, OSError, ValueError) as exc:
            raise BackendError(f"Could not load {self.spec.name}: {exc}", code="load_failed") from exc
        if self.runtime == "torch-fp16":
            self.model.half()
        elif device == "cpu":
            import torch

            torch.set_num_threads(cpu_threads())
        self.tokenizer = _tokenizer(Path(self.spec.path) / "tokenizer.json")

    def _load_onnx(self) -> None:
        import onnxruntime

        prepared = _int8_prepared(self.bundled, self.spec.name)
        options = onnxruntime.SessionOptions()
        # One request at a time (the lock below), each using every core the worker has.
        options.intra_op_num_threads = cpu_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads sleep instead of spinning: the worker shares its cores with the web process and
        # the database, and on a loaded 2-core machine spinning cost ~15% of the embedder's own throughput.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = onnxruntime.InferenceSession(str(prepared.path / "model.onnx"), options,
                                                        providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a bad graph
            raise BackendError(f"Could not load {self.spec.name}'s int8 ONNX graph: {exc}", code="load_failed") from exc
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = _tokenizer(prepared.path / "tokenizer.json")

    def unload(self) -> None:
        self.model = self.session = None

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """Unit-length vectors (cosine = dot product), in the caller's order, and the number of input tokens."""
        encodings = self.tokenizer.encode_batch(texts)
        tokens = sum(len(e.ids) for e in encodings)
        with self.lock:
            if self.session is None:
                vectors = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                            convert_to_numpy=True, show_progress_bar=False)
            else:
                vectors = self._onnx_embed([self._cut(e.ids) for e in encodings])
        vectors = vectors.astype(np.float32)
        if self.runtime != "torch":  # int8 and fp16 outputs are normalised again in fp32
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors, tokens

    def _cut(self, ids: list[int]) -> list[int]:
        """The first max_seq_length tokens, keeping the closing [SEP] as the tokenizer's own truncation does."""
        if len(ids) <= self.max_seq_length:
            return ids
        return ids[:self.max_seq_length - 1] + ids[-1:]

    def _onnx_embed(self, ids: list[list[int]]) -> np.ndarray:
        # Batches of similar length pad little; vectors go back to the caller's positions.
        order = np.argsort([len(i) for i in ids], kind="stable")
        out = np.empty((len(ids), self.spec.params.get("dimensions", 384)), dtype=np.float32)
        for start in range(0, len(ids), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = max(len(ids[r]) for r in rows)
            input_ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros_like(input_ids)
            for line, r in enumerate(rows):
                input_ids[line, :len(ids[r])] = ids[r]
                mask[line, :len(ids[r])] = 1
            feed = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
            out[rows] = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
        return out


def _bundled_name(source: str) -> str | None:
    """The bundled model a `package:<name>` source names (only those have a prepared int8 graph)."""
    if not source.startswith("package:"):
        return None
    from inference.install import source_parse

    return source_parse(source)[0]


def _tokenizer(path: Path):
    from tokenizers import Tokenizer

    if not path.is_file():
        raise BackendError(f"No tokenizer.json at {path}; reinstall the model.", code="load_failed")
    tokenizer = Tokenizer.from_file(str(path))
    # The shipped tokenizer.json pads every input to 128 and cuts there; padding is done per batch here.
    tokenizer.no_padding()
    tokenizer.enable_truncation(COUNT_LIMIT)
    return tokenizer


def _int8_prepared(name: str | None, spec_name: str):
    """The checked int8 artifact: prepared now if it never was, an error if its file is gone or damaged."""
    from inference.install import (
        ONNX_INT8,
        ModelInstallError,
        PreparedModel,
        model_manifest,
        model_prepare,
        model_verify,
    )

    if name is None:
        raise BackendError(f"{spec_name} is not a bundled model, so it has no int8 ONNX graph; "
                           "set PARLEY_EMBED_RUNTIME=torch.", code="load_failed", retryable=False)
    manifest = model_manifest(name, ONNX_INT8)
    try:
        if manifest is None:  # an install from before the int8 graph existed: build it once, here
            logger.info("preparing %s's int8 ONNX graph", name)
            prepared = model_prepare(name, artifact=ONNX_INT8)
        else:
            prepared = PreparedModel(name=name, path=Path(manifest["path"]), sha256=manifest["sha256"])
        model_verify(prepared)
    except ModelInstallError as exc:
        raise BackendError(f"{exc} (manage.py models_install --force {name} rebuilds it; PARLEY_EMBED_RUNTIME=torch "
                           "serves fp32 meanwhile)", code="checksum_mismatch", retryable=False) from exc
    return prepared
