"""bench_knowledge's embedder figures: fp32 (PyTorch) against int8 (ONNX), end to end and alone.

Each runtime ingests the same corpus through the real ingest service (document_ingest, with its per-stage
timings), then answers the labelled questions (hit@5); the passages ingest cut are then embedded alone,
in ingest's batch size, and the two runtimes' vectors compared. Runs inside bench_knowledge's scratch
database, after the bundled models are registered.
"""

from __future__ import annotations

import os
import pydoc_data.topics
import time
from collections.abc import Callable

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.test import override_settings

RUNTIMES = {"fp32": "torch", "int8": "onnx-int8"}
TARGET_PASSAGES_PER_S = 150
ROUTE = "embed-default"


def embedder_figures(*, labelled: list[tuple[str, str]], corpus_chars: int = 4000,
                     log: Callable[[str], None] = print) -> dict[str, float]:
    """Passages/s end to end (ingest) and embedding alone, cosine int8 vs fp32, and hit@5, per runtime."""
    from accounts.services import user_create

    user = user_create(email="bench-embedders@example.com", password=None)
    # 79 documents are more than the Free plan keeps; plan limits are not what this measures.
    with override_settings(PARLEY_PLANS_ENFORCED=False):
        figures, vectors = _runtimes_measure(user=user, labelled=labelled, corpus_chars=corpus_chars, log=log)
    cosine = (vectors["int8"] * vectors["fp32"]).sum(axis=1)
    figures["embed_int8_cosine_min"] = float(cosine.min())
    figures["embed_int8_cosine_mean"] = float(cosine.mean())
    return figures


def _runtimes_measure(*, user, labelled: list[tuple[str, str]], corpus_chars: int,
                      log: Callable[[str], None]) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    figures: dict[str, float] = {}
    vectors: dict[str, np.ndarray] = {}
    previous = os.environ.get("PARLEY_EMBED_RUNTIME")
    try:
        for label, runtime in RUNTIMES.items():
            os.environ["PARLEY_EMBED_RUNTIME"] = runtime
            _embedder_reload()
            log(f"embedder {label} ({runtime}): ingesting {len(pydoc_data.topics.topics)} pydoc topics")
            ingest, passages = _ingest(user=user, label=label, labelled=labelled, corpus_chars=corpus_chars)
            figures.update(ingest)
            log(f"embedder {label}: embedding {len(passages)} passages alone")
            alone, vectors[label] = _embed_alone(user=user, label=label, passages=passages)
            figures.update(alone)
    finally:
        if previous is None:
            os.environ.pop("PARLEY_EMBED_RUNTIME", None)
        else:
            os.environ["PARLEY_EMBED_RUNTIME"] = previous
        _embedder_reload()
    return figures, vectors


def embedder_rows(f: dict[str, float]) -> list[tuple[str, object, str, str]]:
    """The table rows for embedder_figures' output (none if it did not run)."""
    if "embed_int8_cosine_min" not in f:
        return []
    chars = f"~{int(f['embed_passage_chars'])} characters"
    rows: list[tuple[str, object, str, str]] = []
    for label in RUNTIMES:
        ingest = f[f"ingest_{label}_passages_per_s"]
        rows += [
            (f"embedder {label}: ingest end to end ({chars})", ingest, "passages/s",
             _verdict(ingest >= TARGET_PASSAGES_PER_S, f">= {TARGET_PASSAGES_PER_S}") if label == "int8" else ""),
            (f"embedder {label}: embedding alone", f[f"embed_{label}_passages_per_s"], "passages/s", ""),
            (f"embedder {label}: embedding alone, per CPU-second", f[f"embed_{label}_passages_per_cpu_s"],
             "passages", "machine load aside"),
        ]
        total = f[f"ingest_{label}_seconds"]
        for stage in ("extract_chunk", "embed", "store", "other"):
            rows.append((f"embedder {label}: ingest time in {stage.replace('_', ' + ')}",
                         100 * f[f"ingest_{label}_{stage}_s"] / total, "% of time", ""))
    hits = f["hit_at_5_int8"] - f["hit_at_5_fp32"]
    rows += [
        ("embedder int8 vs fp32: cosine, min", f["embed_int8_cosine_min"], "",
         _verdict(f["embed_int8_cosine_min"] >= 0.99, ">= 0.99")),
        ("embedder int8 vs fp32: cosine, mean", f["embed_int8_cosine_mean"], "", ""),
        ("embedder fp32: hit@5", f["hit_at_5_fp32"], "", ""),
        ("embedder int8: hit@5", f["hit_at_5_int8"], "", _verdict(abs(hits) <= 0.01 + 1e-9, "within 0.01 of fp32")),
    ]
    return rows


def _embedder_reload() -> None:
    """Load the embed route's model again in this process, so PARLEY_EMBED_RUNTIME's value takes effect."""
    # The bench times one backend in this process (as inference's own benches do), so it reloads it here
    # rather than through a worker's control channel.
    from inference.runtime import host
    from inference.selectors import route_resolve
    from inference.worker import spec_config

    _, specs = route_resolve(model=ROUTE, task="embed")
    host.load(spec_config(specs[0].name), reload=True)


def _ingest(*, user, label: str, labelled: list[tuple[str, str]], corpus_chars: int) -> tuple[dict[str, float],
                                                                                             list[str]]:
    from inference.services import Caller, embed
    from knowledge.models import Chunk
    from knowledge.selectors import chunks_search
    from knowledge.services import collection_create, collection_delete, document_create_from_file, document_ingest

    collection = collection_create(user=user, name=f"pydoc topics ({label})")
    embed(caller=Caller(user=user, via="ingest"), texts=["warm up"], in_process=True)
    timings: dict[str, float] = {}
    titles: dict[int, str] = {}
    wall, passages = 0.0, 0
    for name, text in sorted(pydoc_data.topics.topics.items()):
        document, _ = document_create_from_file(user=user, collection=collection, enqueue=False,
                                                file=ContentFile(text[:corpus_chars].encode(), name=f"{name}.txt"))
        started = time.perf_counter()
        done = document_ingest(document_id=document.pk, timings=timings)
        wall += time.perf_counter() - started
        if done is not None and done.status == "ready":
            passages += done.chunk_count
            titles[done.pk] = name
    hits = sum(topic in {titles.get(r.document_id) for r in chunks_search(user=user, query=question, k=5,
                                                                        embed_in_process=True)}
               for question, topic in labelled)
    texts = list(Chunk.objects.filter(collection=collection).order_by("document_id", "ordinal")
                 .values_list("text", flat=True))
    collection_delete(user=user, collection=collection)
    stages = {f"ingest_{label}_{stage}_s": timings.get(stage, 0.0) for stage in ("extract_chunk", "embed", "store")}
    return {
        f"ingest_{label}_passages": passages, f"ingest_{label}_seconds": wall,
        f"ingest_{label}_passages_per_s": passages / wall, **stages,
        f"ingest_{label}_other_s": wall - sum(stages.values()),
        f"hit_at_5_{label}": hits / len(labelled), "hit_at_5_questions": len(labelled),
    }, texts


def _embed_alone(*, user, label: str, passages: list[str]) -> tuple[dict[str, float], np.ndarray]:
    from inference.services import Caller, embed

    caller = Caller(user=user, via="ingest")
    batch = settings.PARLEY_KNOWLEDGE_EMBED_BATCH
    out = []
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(passages), batch):
        out.append(embed(caller=caller, texts=passages[start:start + batch], in_process=True).vectors)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        f"embed_{label}_passages_per_s": len(passages) / wall,
        f"embed_{label}_passages_per_cpu_s": len(passages) / cpu,
        "embed_passages": len(passages),
        "embed_passage_chars": float(np.mean([len(p) for p in passages])),
    }, np.concatenate(out)


def _verdict(ok: bool, target: str) -> str:
    return f"{target} {'ok' if ok else 'MISSED'}"
