"""Benchmark knowledge: ingest throughput, retrieval latency and recall at 10k and 100k chunks,
and answer relevance (hit@5, with and without reranking) on two labelled corpora that ship with
Python: CPython's documentation topics and 25 standard-library modules' pydoc text
(knowledge/bench_corpora.py).

Runs in a scratch database (`parley_bench` unless --scratch-db names another; created and dropped
here) so the real one is untouched.
"""

from __future__ import annotations

import contextlib
import pydoc_data.topics
import random
import time

import numpy as np
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand
from django.db import connection
from django.test import override_settings

from common.bench import as_json, median, percentile, table
from knowledge.bench_corpora import PYDOC_TOPIC_QUESTIONS as LABELLED
from knowledge.bench_corpora import STDLIB_MODULES, STDLIB_QUESTIONS, stdlib_document
from knowledge.bench_embedders import embedder_figures, embedder_rows

TOPICS = pydoc_data.topics.topics
FORMATS = ("txt", "md", "html", "pdf", "docx")
INDEX_SQL = ("CREATE INDEX knowledge_chunk_embedding_hnsw ON knowledge_chunk "
             "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)")

class Command(BaseCommand):
    help = "Measure ingest throughput, retrieval latency and recall at 10k/100k chunks, and hit@5."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--sizes", default="10000,100000",
                            help="Chunk counts for the retrieval runs (empty: relevance only).")
        parser.add_argument("--queries", type=int, default=200, help="Timed queries per size and filter.")
        parser.add_argument("--recall-queries", type=int, default=100)
        parser.add_argument("--corpus-chars", type=int, default=4000,
                            help="Characters kept from each of the 79 pydoc topics in the ingest corpus.")
        parser.add_argument("--skip-ingest", action="store_true", help="Only the retrieval runs.")
        parser.add_argument("--keep", action="store_true", help="Keep the scratch database afterwards.")
        parser.add_argument("--scratch-db", default="parley_bench",
                            help="Name of the scratch database (created and dropped here).")

    def handle(self, *args: object, sizes: str, queries: int, recall_queries: int, corpus_chars: int,
               skip_ingest: bool, keep: bool, scratch_db: str, **options: object) -> None:
        figures: dict[str, float] = {}
        # The bench user owns 104 documents: more than a free plan keeps, and plans are not measured here.
        with _scratch_database(name=scratch_db, keep=keep), override_settings(PARLEY_PLANS_ENFORCED=False):
            from inference.services import bundled_models_register

            bundled_models_register()
            self.user = None
            if not skip_ingest:
                figures.update(self._ingest_and_relevance(corpus_chars))
                figures.update(embedder_figures(labelled=LABELLED, corpus_chars=corpus_chars, log=self.stderr.write))
            figures.update(self._query_embedding())
            figures.update(self._retrieval([int(s) for s in sizes.split(",") if s.strip()], queries, recall_queries))
        self.stdout.write(table(_rows(figures)))
        self.stdout.write(as_json("knowledge", figures))

    # ---------------------------------------------------------------- ingest + hit@5

    def _ingest_and_relevance(self, corpus_chars: int) -> dict[str, float]:
        from accounts.services import user_create
        from knowledge.services import collection_create, collection_delete

        user = self.user = user_create(email="bench-ingest@example.com", password=None)
        # Warm the embedding model so its load time isn't counted as ingest.
        from inference.services import Caller, embed

        embed(caller=Caller(user=user, via="ingest"), texts=["warm up"], in_process=True)
        timings: dict[str, float] = {}
        topics = collection_create(user=user, name="pydoc topics")
        self.stderr.write(f"ingesting {len(TOPICS)} pydoc topics ({corpus_chars} characters each at most)")
        files = [(f"{name}.{FORMATS[index % len(FORMATS)]}",
                  _corpus_file(name, text[:corpus_chars], FORMATS[index % len(FORMATS)]))
                 for index, (name, text) in enumerate(sorted(TOPICS.items()))]
        titles, chunks, wall = self._ingest(topics, files, timings)
        figures: dict[str, float] = {}
        other = wall - sum(timings.values())
        figures.update({
            "ingest_chunks": chunks, "ingest_seconds": wall, "ingest_chunks_per_s": chunks / wall,
            "ingest_extract_chunk_s": timings.get("extract_chunk", 0), "ingest_embed_s": timings.get("embed", 0),
            "ingest_store_s": timings.get("store", 0), "ingest_other_s": other,
        })
        figures.update(self._relevance("", topics, titles, [(q, topic, "") for q, topic in LABELLED]))
        stdlib = collection_create(user=user, name="stdlib modules")
        self.stderr.write(f"ingesting {len(STDLIB_MODULES)} standard-library modules' pydoc text")
        files = [(f"{name}.md", stdlib_document(name).encode()) for name in STDLIB_MODULES]
        titles, chunks, _ = self._ingest(stdlib, files, {})
        figures["stdlib_chunks"] = chunks
        figures.update(self._relevance("stdlib_", stdlib, titles, STDLIB_QUESTIONS))
        collection_delete(user=user, collection=topics)
        collection_delete(user=user, collection=stdlib)
        return figures

    def _ingest(self, collection, files: list[tuple[str, bytes]], timings: dict[str, float]
                ) -> tuple[dict[int, str], int, float]:
        """Ingest the files in-process: ({document id: its file's stem}, chunks, seconds)."""
        from knowledge.services import document_create_from_file, document_ingest

        titles: dict[int, str] = {}
        chunks, wall = 0, 0.0
        for filename, content in files:
            document, _ = document_create_from_file(user=self.user, collection=collection, enqueue=False,
                                                    file=ContentFile(content, name=filename))
            started = time.perf_counter()
            done = document_ingest(document_id=document.pk, timings=timings)
            wall += time.perf_counter() - started
            if done is None or done.status != "ready":
                self.stderr.write(f"  {filename}: {done.error if done else 'not ingested'}")
                continue
            chunks += done.chunk_count
            titles[done.pk] = filename.rsplit(".", 1)[0]
        return titles, chunks, wall

    def _relevance(self, prefix: str, collection, titles: dict[int, str],
                   questions: list[tuple[str, str, str]]) -> dict[str, float]:
        """hit@5 by answering document (and by answering passage where the question names its words),
        without and with reranking, and the search time of each (query embedding excluded)."""
        from inference.services import Caller, embed
        from knowledge.selectors import chunks_search

        vectors = embed(caller=Caller(user=self.user, via="knowledge"), texts=[q for q, _, _ in questions],
                        in_process=True).vectors
        figures: dict[str, float] = {f"{prefix}hit_at_5_questions": len(questions)}
        for suffix, rerank in (("", False), ("_reranked", True)):
            hits, passage_hits, anchored, times = 0, 0, 0, []
            for (question, answer, words), vector in zip(questions, vectors, strict=True):
                started = time.perf_counter()
                results = chunks_search(user=self.user, query=question, query_vector=vector, k=5,
                                        collections=[collection.pk], rerank=rerank)
                times.append((time.perf_counter() - started) * 1000)
                found = [titles.get(r.document_id) for r in results]
                hits += answer in found
                if answer not in found:
                    self.stderr.write(f"  {prefix or 'topics_'}miss{suffix}: {question!r} wanted {answer}, got {found}")
                if words:
                    anchored += 1
                    passage_hits += any(titles.get(r.document_id) == answer and _squash(words) in _squash(r.text)
                                        for r in results)
            figures[f"{prefix}hit_at_5{suffix}"] = hits / len(questions)
            if anchored:
                figures[f"{prefix}passage_hit_at_5{suffix}"] = passage_hits / anchored
            figures[f"{prefix}search_p50_ms{suffix}"] = median(times)
        return figures

    def _query_embedding(self) -> dict[str, float]:
        from accounts.services import user_create
        from inference.services import Caller, embed

        self.user = self.user or user_create(email="bench-ingest@example.com", password=None)

        times = []
        for question, _ in LABELLED:
            started = time.perf_counter()
            embed(caller=Caller(user=self.user, via="knowledge"), texts=[question], in_process=True)
            times.append((time.perf_counter() - started) * 1000)
        return {"query_embed_p50_ms": median(times)}

    # ---------------------------------------------------------------- retrieval

    def _retrieval(self, sizes: list[int], queries: int, recall_queries: int) -> dict[str, float]:
        from accounts.services import user_create
        from knowledge.selectors import chunks_search
        from knowledge.services import collection_create, collection_share

        figures: dict[str, float] = {}
        everyone = user_create(email="bench-all@example.com", password=None)
        tenth = user_create(email="bench-tenth@example.com", password=None)
        collections = [collection_create(user=everyone, name=f"Synthetic {i}") for i in range(100)]
        for collection in collections[:10]:  # a permission filter admitting 10% of the collections
            collection_share(user=everyone, collection=collection, permission="read", grantee_email=tenth.email)
        data = _Synthetic(collections)
        inserted = 0
        for size in sizes:
            self.stderr.write(f"building {size:,} chunks")
            with connection.cursor() as cursor:
                cursor.execute("DROP INDEX IF EXISTS knowledge_chunk_embedding_hnsw")
            started = time.perf_counter()
            data.insert(inserted, size - inserted)
            inserted = size
            copy_s = time.perf_counter() - started
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute("SET maintenance_work_mem = '1GB'")
                cursor.execute(INDEX_SQL)
                # What autovacuum would have done by now: statistics, GIN pending list merged.
                cursor.execute("VACUUM ANALYZE knowledge_chunk")
                cursor.execute("ANALYZE")
            build_s = time.perf_counter() - started
            label = f"{size // 1000}k"
            figures[f"{label}_insert_s"], figures[f"{label}_index_build_s"] = copy_s, build_s
            self.stderr.write(f"  inserted in {copy_s:.1f}s, HNSW built in {build_s:.1f}s; querying")
            # Synthetic vectors are not meaningful distances: the relevance floor is off (floor=False).
            for who, user in (("all", everyone), ("10pct", tenth)):
                probes = data.queries(queries)
                for text, vector in probes[:10]:  # warm caches
                    chunks_search(user=user, query=text, query_vector=vector, k=5, floor=False)
                latencies, added = [], []
                for text, vector in probes:
                    started = time.perf_counter()
                    found = chunks_search(user=user, query=text, query_vector=vector, k=5, floor=False)
                    plain = (time.perf_counter() - started) * 1000
                    latencies.append(plain)
                    assert len(found) == 5
                    # Reported apart: what reranking adds to the same query, timed right after it so
                    # that other load on the machine weighs on both alike.
                    started = time.perf_counter()
                    chunks_search(user=user, query=text, query_vector=vector, k=5, floor=False, rerank=True)
                    added.append((time.perf_counter() - started) * 1000 - plain)
                figures[f"{label}_{who}_p50_ms"] = median(latencies)
                figures[f"{label}_{who}_p95_ms"] = percentile(latencies, 95)
                figures[f"{label}_{who}_rerank_p50_ms"] = median(added)
                figures[f"{label}_{who}_rerank_p95_ms"] = percentile(added, 95)
                recalls = []
                for text, vector in data.queries(recall_queries):
                    approx = chunks_search(user=user, query=text, query_vector=vector, k=10, mode="vector", floor=False)
                    exact = chunks_search(user=user, query=text, query_vector=vector, k=10, mode="vector", exact=True,
                                          floor=False)
                    recalls.append(len({r.chunk_id for r in approx} & {r.chunk_id for r in exact}) / len(exact))
                figures[f"{label}_{who}_recall_at_10"] = float(np.mean(recalls))
        return figures


class _Synthetic:
    """Clustered unit vectors (like real embeddings, unlike uniform noise) and texts drawn from
    the pydoc vocabulary with Zipf weights, written with binary COPY."""

    def __init__(self, collections: list) -> None:
        from knowledge.models import Document

        self.rng = np.random.default_rng(42)
        self.centroids = _unit(self.rng.standard_normal((256, 384)))
        words = [w.strip(".,:;()\"'`*").lower() for text in TOPICS.values() for w in text.split()]
        counts: dict[str, int] = {}
        for word in words:
            if word.isalpha() and len(word) > 2:
                counts[word] = counts.get(word, 0) + 1
        self.vocabulary = np.array(sorted(counts, key=counts.get, reverse=True))
        weights = 1 / np.arange(1, len(self.vocabulary) + 1)
        self.weights = weights / weights.sum()
        self.documents: list[tuple[int, int, str]] = []
        for collection in collections:
            for number in range(10):
                document = Document.objects.create(collection=collection, title=f"{collection.name} doc {number}",
                                                   status=Document.Status.READY, progress=100)
                # Titles and headings from the same vocabulary, so the weighted vector has all three parts.
                title = " ".join(self.rng.choice(self.vocabulary[:2000], size=3))
                self.documents.append((document.pk, collection.pk, title))
        self.sample_texts: list[str] = []

    def vectors(self, n: int) -> np.ndarray:
        clusters = self.rng.integers(0, len(self.centroids), n)
        return _unit(self.centroids[clusters] + 0.05 * self.rng.standard_normal((n, 384))).astype(np.float32)

    def insert(self, start: int, n: int) -> None:
        from pgvector.psycopg import register_vector

        connection.ensure_connection()
        register_vector(connection.connection)
        for offset in range(0, n, 20_000):
            batch = min(20_000, n - offset)
            vectors = self.vectors(batch)
            words = self.rng.choice(self.vocabulary, size=(batch, 60), p=self.weights)
            with connection.cursor() as cursor, cursor.cursor.copy(
                "COPY knowledge_chunk (document_id, collection_id, ordinal, text, start_offset, end_offset, "
                "token_count, title, heading, embedding) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "int8", "int4", "text", "int4", "int4", "int4", "text", "text", "vector"])
                for row in range(batch):
                    number = start + offset + row
                    document_id, collection_id, title = self.documents[number % len(self.documents)]
                    text = " ".join(words[row])
                    heading = " ".join(words[row][:2])
                    if len(self.sample_texts) < 5000:
                        self.sample_texts.append(text)
                    ordinal = number // len(self.documents)
                    copy.write_row((document_id, collection_id, ordinal, text, ordinal * 400, ordinal * 400 + len(text),
                                    60, title, heading, vectors[row]))

    def queries(self, n: int) -> list[tuple[str, np.ndarray]]:
        """Two words from a stored passage (so the keyword leg has matches) and a vector near a cluster."""
        rng = random.Random(int(self.rng.integers(1 << 30)))
        texts = [" ".join(rng.sample(rng.choice(self.sample_texts).split(), 2)) for _ in range(n)]
        return list(zip(texts, self.vectors(n), strict=True))


def _corpus_file(name: str, text: str, kind: str) -> bytes:
    from knowledge.samples import docx_bytes, pdf_bytes

    paragraphs = text.split("\n\n")
    if kind == "md":
        return f"# {name}\n\n{text}".encode()
    if kind == "html":
        return ("<html><body>" + "".join(f"<p>{p}</p>" for p in paragraphs) + "</body></html>").encode()
    if kind == "pdf":
        return pdf_bytes([text])
    if kind == "docx":
        return docx_bytes(paragraphs)
    return text.encode()


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold()


def _unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


@contextlib.contextmanager
def _scratch_database(*, name: str, keep: bool = False):
    """A fresh, migrated scratch database for the duration, dropped afterwards."""
    settings = connection.settings_dict
    original = settings["NAME"]
    settings.setdefault("TEST", {})["NAME"] = name
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield
    finally:
        if keep:
            connection.close()
            settings["NAME"] = original
        else:
            connection.creation.destroy_test_db(original, verbosity=0)


def _rows(f: dict[str, float]) -> list[tuple[str, object, str, str]]:
    rows: list[tuple[str, object, str, str]] = []
    if "ingest_chunks" in f:
        total = f["ingest_seconds"]
        rows += [
            ("ingest: chunks (79 pydoc topics, 5 formats)", int(f["ingest_chunks"]), "chunks", ""),
            ("ingest: throughput", f["ingest_chunks_per_s"], "chunks/s", _verdict(f["ingest_chunks_per_s"] >= 150,
                                                                                  ">= 150")),
            ("ingest: extract + chunk", 100 * f["ingest_extract_chunk_s"] / total, "% of time", ""),
            ("ingest: embed (MiniLM, in-process)", 100 * f["ingest_embed_s"] / total, "% of time", ""),
            ("ingest: store (bulk insert)", 100 * f["ingest_store_s"] / total, "% of time", ""),
            ("ingest: claim, progress, files", 100 * f["ingest_other_s"] / total, "% of time", ""),
        ]
    for prefix, corpus in (("", "pydoc topics"), ("stdlib_", "stdlib modules")):
        if f"{prefix}hit_at_5" not in f:
            continue
        count = int(f[f"{prefix}hit_at_5_questions"])
        for suffix, how in (("", ""), ("_reranked", ", reranked")):
            hit = f[f"{prefix}hit_at_5{suffix}"]
            rows.append((f"{corpus}: hit@5 ({count} questions{how})", hit, "", _verdict(hit >= 0.95, ">= 0.95")))
            if f"{prefix}passage_hit_at_5{suffix}" in f:
                rows.append((f"{corpus}: answering passage in top 5{how}", f[f"{prefix}passage_hit_at_5{suffix}"],
                             "", ""))
            rows.append((f"{corpus}: search p50 (small corpus{how})", f[f"{prefix}search_p50_ms{suffix}"], "ms", ""))
    rows += embedder_rows(f)
    rows.append(("query embedding (in-process), p50", f["query_embed_p50_ms"], "ms", "not in search latency"))
    for label in sorted({key.split("_")[0] for key in f if key.endswith("_index_build_s")}, key=lambda s: int(s[:-1])):
        rows.append((f"{label}: HNSW build", f[f"{label}_index_build_s"], "s", ""))
        for who, name in (("all", "unfiltered"), ("10pct", "filter admits 10%")):
            p95 = f[f"{label}_{who}_p95_ms"]
            recall = f[f"{label}_{who}_recall_at_10"]
            target = label == "100k"
            rows += [
                (f"{label} {name}: search p50", f[f"{label}_{who}_p50_ms"], "ms", ""),
                (f"{label} {name}: search p95", p95, "ms", _verdict(p95 <= 30, "<= 30") if target else ""),
                (f"{label} {name}: reranking adds, p50", f[f"{label}_{who}_rerank_p50_ms"], "ms", ""),
                (f"{label} {name}: reranking adds, p95", f[f"{label}_{who}_rerank_p95_ms"], "ms", ""),
                (f"{label} {name}: recall@10", recall, "", _verdict(round(recall, 3) >= 0.95, ">= 0.95")),
            ]
    return rows


def _verdict(ok: bool, target: str) -> str:
    return f"{target} {'ok' if ok else 'MISSED'}"
