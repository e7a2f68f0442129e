from __future__ import annotations

import threading

import numpy as np

from inference.backends.base import Backend, BackendError


class SentenceTransformersBackend(Backend):
    task = "embed"

    def load(self) -> None:
        from sentence_transformers import SentenceTransformer

        try:
            self.model = SentenceTransformer(str(self.spec.path), device=self.device, local_files_only=True)
        except (RuntimeError, OSError, ValueError) as exc:
            raise BackendError(f"Could not load {self.spec.name}: {exc}", code="load_failed") from exc
        self.lock = threading.Lock()

    def unload(self) -> None:
        self.model = None

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """Unit-length vectors (cosine = dot product) and the number of input tokens."""
        tokens = sum(len(ids) for ids in self.model.tokenizer(texts, truncation=True)["input_ids"])
        with self.lock:
            vectors = self.model.encode(
                texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return vectors.astype(np.float32), tokens
