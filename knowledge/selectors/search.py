"""Hybrid retrieval: HNSW vector search and Postgres full text, fused by reciprocal rank.

The caller's permissions are applied by Postgres inside the search: in one transaction, the
readable-collections query (owned, their teams', granted to them or their teams) gives an array
of ids, which the search statement binds as a constant that both index scans filter on. It is
a constant rather than a subquery because Postgres cannot estimate how many rows a subquery's
array admits: it guessed 10% for a user who could read everything and chose an exact scan.
`hnsw.iterative_scan` keeps the vector scan going until enough chunks pass the filter, so a
user who can read 1% of the chunks still gets k results.

A relevance floor (`PARLEY_KNOWLEDGE_MAX_DISTANCE`, cosine distance) drops passages whose
embedding is farther than that from the query's, unless the keyword leg matched them (every word
of the query, or half of its words and two of them): without it a nearest-neighbour search always
returns k passages, and a nonsense query listed every document.

Each chunk's full-text vector weighs its document's title (A) and heading (B) above its text (D),
and ts_rank_cd scores a title match ten times a body match, so in the keyword leg a passage of the
document the query names comes first. `rerank` re-orders the fused top RERANK_DEPTH by a lexical
proximity score (see `_proximity`) before keeping k.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.urls import reverse

from accounts.models import User
from common.errors import ApplicationError
from knowledge.chunking import token_estimate
from knowledge.selectors.access import collections_readable

S = TypeVar("S", "Citation", dict)
MAX_QUERY_CHARS = 2000
RRF_K = 60  # the constant from Cormack et al.; it damps the weight of the very first ranks
RERANK_DEPTH = 20
# The keyword leg also takes passages with at least this share of the query's distinct words (rounded
# up), after those with all of them. Half: on the two bench corpora (58 questions) it found the answering
# document for 2 more questions than all-words alone and lost none; 0.6 and 0.75 found fewer.
MIN_SHOULD_MATCH = 0.5
# ... of at most this many passages with any of the words (each one's words are counted): at 100k passages
# the full PARLEY_KNOWLEDGE_TEXT_MATCH_LIMIT added 5-7 ms to p95, and such common words say little.
PARTIAL_MATCH_SCAN = 250
# websearch_to_tsquery's syntax: a "quoted phrase", -word, or. A query using it means exactly that.
_WEBSEARCH_SYNTAX = re.compile(r'"|(?:^|\s)-\w|\bor\b', re.IGNORECASE)
CONTEXT_TOKENS = 2000
# For a prompt that carries context_build's numbered sources: citations are [n] markers in the text,
# which the UI links to their passages, and only the sources an answer marks are listed (sources_cited).
CITATION_INSTRUCTIONS = (
    "Cite the sources inline with their numbers in square brackets, like [1] or [2][3], right after "
    "the sentence that uses them. Cite only sources you used, and only numbers from the list; do not "
    "add a list of references at the end."
)


@dataclass(frozen=True)
class SearchResult:
    chunk_id: int
    document_id: int
    document_title: str
    collection_id: int
    ordinal: int
    text: str
    start_offset: int
    end_offset: int
    token_count: int
    score: float
    vector_rank: int | None
    text_rank: int | None
    distance: float | None = None  # cosine distance to the query (None in text-only mode)
    collection_name: str = ""

    @property
    def url(self) -> str:
        return citation_url(document_id=self.document_id, chunk_id=self.chunk_id)

    @property
    def relevance(self) -> float | None:
        """Cosine similarity to the query, 0..1, for a relevance bar; None when not computed."""
        return None if self.distance is None else round(min(1.0, max(0.0, 1.0 - self.distance)), 3)


@dataclass(frozen=True)
class Citation:
    number: int
    document_id: int
    document_title: str
    chunk_id: int
    start_offset: int
    end_offset: int
    url: str
    collection_id: int | None = None
    collection_name: str = ""
    passage_url: str = ""  # the passage as JSON (title, text, document URL), for a side panel

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def citation_url(*, document_id: int, chunk_id: int) -> str:
    """The document page scrolled to the passage, which the page highlights."""
    path = reverse("knowledge:document_detail", kwargs={"document_id": document_id})
    return f"{path}?chunk={chunk_id}#chunk-{chunk_id}"


def passage_api_url(*, chunk_id: int) -> str:
    return reverse("api-knowledge-passage", kwargs={"chunk_id": chunk_id})


def relevance_floor() -> float | None:
    """The largest cosine distance a passage may have from the query (None: no floor)."""
    value = settings.PARLEY_KNOWLEDGE_MAX_DISTANCE
    return None if value is None or value >= 2 else float(value)


def query_check(query: str) -> str:
    query = (query or "").strip()
    if not query:
        raise ApplicationError("The query is empty; type what you are looking for.", code="query_empty")
    if len(query) > MAX_QUERY_CHARS:
        raise ApplicationError(
            f"The query is {len(query):,} characters long; the limit is {MAX_QUERY_CHARS:,}. Shorten it.",
            code="query_too_long",
        )
    return query


def _vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{value:.7g}" for value in np.asarray(vector, dtype=np.float32).ravel()) + "]"


_SEARCH_SQL = """
WITH vector_hits AS (
    SELECT id, row_number() OVER (ORDER BY distance) AS rank
    FROM (
        SELECT ch.id, ch.embedding <=> %(vector)s::vector AS distance
        FROM knowledge_chunk ch
        WHERE ch.collection_id = ANY(%(allowed)s)
        ORDER BY ch.embedding <=> %(vector)s::vector
        LIMIT %(candidates)s
    ) nearest
),
-- The keyword leg. A passage with every word of the query (websearch syntax: quotes, -word, or) ranks
-- first; unless the query uses that syntax, one with at least MIN_SHOULD_MATCH of its distinct words
-- (and two of them) follows, by how many it has: a question's words ("how do I select a range ... with start and stop")
-- are rarely all in the passage that answers it. Ranking reads every matching row, and words that
-- occur in a large share of the passages would make this leg scan thousands: each branch takes its
-- first text_limit matches only, and such unselective words are left to the vector leg.
text_query AS MATERIALIZED (
    SELECT websearch_to_tsquery('english', %(text)s) AS strict,
           CAST(coalesce(string_agg(quote_literal(term), ' | '), '') AS tsquery) AS loose,
           coalesce(array_agg(CAST(quote_literal(term) AS tsquery)), '{}') AS terms,
           ceil(%(min_match)s * count(term)) AS needed, count(term) AS words
    FROM unnest(tsvector_to_array(to_tsvector('english', %(text)s))) term
),
text_hits AS (
    SELECT id, full_match, row_number() OVER (ORDER BY full_match DESC, matched DESC, score DESC, id) AS rank
    FROM (
        SELECT DISTINCT ON (m.id) m.id, m.full_match, m.matched, ts_rank_cd(m.search_vector, m.query) AS score
        FROM (
            (SELECT ch.id, ch.search_vector, true AS full_match, q.words AS matched, q.strict AS query
             FROM knowledge_chunk ch, text_query q
             WHERE ch.search_vector @@ q.strict AND ch.collection_id = ANY(%(allowed)s)
             LIMIT %(text_limit)s)
            UNION ALL
            (SELECT partial.id, partial.search_vector, false, partial.matched, q.loose
             FROM text_query q, LATERAL (
                 SELECT ch.id, ch.search_vector,
                        (SELECT count(*) FROM unnest(q.terms) term WHERE ch.search_vector @@ term) AS matched
                 FROM knowledge_chunk ch
                 WHERE %(relax)s AND q.words > 1 AND ch.search_vector @@ q.loose
                       AND ch.collection_id = ANY(%(allowed)s)
                 LIMIT %(partial_limit)s
             ) partial
             WHERE partial.matched >= greatest(q.needed, 2))
        ) m
        ORDER BY m.id, m.full_match DESC
    ) matches
    ORDER BY full_match DESC, matched DESC, score DESC, id
    LIMIT %(candidates)s
),
fused AS MATERIALIZED (
    SELECT COALESCE(v.id, t.id) AS id, v.rank AS vector_rank, t.rank AS text_rank,
           COALESCE(1.0 / (%(rrf)s + v.rank), 0) * %(use_vector)s
             + COALESCE(1.0 / (%(rrf)s + t.rank), 0) * %(use_text)s AS score
    FROM vector_hits v
    FULL OUTER JOIN text_hits t ON t.id = v.id
    WHERE (v.rank IS NOT NULL AND %(use_vector)s = 1) OR (t.rank IS NOT NULL AND %(use_text)s = 1)
)
-- LATERAL ... LIMIT 1 keeps the lookups of the (at most 2 x candidates) fused ids on the primary
-- keys: without the LIMIT the planner flattens them into joins and may scan whole tables.
SELECT ch.id, ch.document_id, d.title, ch.collection_id, ch.ordinal, ch.text, ch.start_offset,
       ch.end_offset, ch.token_count, f.score, f.vector_rank, f.text_rank, ch.distance, d.collection_name,
       ch.lexemes
FROM fused f
CROSS JOIN LATERAL (
    SELECT c.id, c.document_id, c.collection_id, c.ordinal, c.text, c.start_offset, c.end_offset, c.token_count,
           CASE WHEN %(use_vector)s = 1 THEN c.embedding <=> %(vector)s::vector END AS distance,
           CASE WHEN %(rerank)s THEN c.search_vector::text END AS lexemes
    FROM knowledge_chunk c WHERE c.id = f.id LIMIT 1
) ch
-- Chunks of a document still being ingested are stored batch by batch; they become visible
-- when the document turns ready. Checking here (not in the index scan) keeps that scan's
-- filter a plain array test; only in-flight documents can take candidate slots.
CROSS JOIN LATERAL (
    SELECT doc.title, col.name AS collection_name
    FROM knowledge_document doc JOIN knowledge_collection col ON col.id = doc.collection_id
    WHERE doc.id = ch.document_id AND doc.status = 'ready' LIMIT 1
) d
-- The relevance floor: near enough in meaning, or a keyword match (every word of the query, or at
-- least half of its words and two of them).
WHERE %(max_distance)s::float8 IS NULL OR ch.distance IS NULL OR ch.distance <= %(max_distance)s::float8
      OR (f.text_rank IS NOT NULL AND %(use_text)s = 1)
ORDER BY f.score DESC, ch.id
LIMIT %(k)s
"""


def chunks_search(*, user: User, query: str, collections: list[int] | None = None, k: int = 5,
                  query_vector: np.ndarray | None = None, mode: str = "hybrid", exact: bool = False,
                  embed_in_process: bool = False, api_key=None, counts_as_request: bool = True,
                  floor: bool = True, rerank: bool = False) -> list[SearchResult]:
    """The k best chunks the user may read, best first.

    `collections` narrows the search to those ids (ids the user may not read are ignored);
    `query_vector` skips embedding the query (benchmarks); `mode` is hybrid, vector or text;
    `exact` disables the vector index (the reference for recall). The query is embedded by the gpu
    worker unless `embed_in_process` (code already running in a Celery worker, tests). A search on its own
    is one of the user's requests (their plan's requests per minute); one made for a grounded answer or a
    chat turn (`counts_as_request=False`) is part of that request, which counts once. `floor=False`
    turns the relevance floor off (benchmarks and tests that search with random vectors). `rerank`
    re-orders the best RERANK_DEPTH by `_proximity` before keeping k; it only re-orders rows the
    permission filter already admitted.
    """
    query = query_check(query)
    if mode not in ("hybrid", "vector", "text"):
        raise ApplicationError("mode must be hybrid, vector or text.", code="invalid_mode")
    k = max(1, min(int(k), 50))
    allowed = collections_readable(user=user)
    if collections is not None:
        allowed = allowed.filter(id__in=[int(c) for c in collections])
    if query_vector is None and mode != "text":
        from inference.services import Caller, embed

        via = "search" if counts_as_request else "knowledge"
        query_vector = embed(caller=Caller(user=user, api_key=api_key, via=via), texts=[query],
                             in_process=embed_in_process).vectors[0]
    vector = _vector_literal(query_vector) if query_vector is not None else _vector_literal(np.zeros(384))
    params = {
        "vector": vector, "text": query, "candidates": max(4 * k, 40), "rrf": RRF_K, "k": k,
        "text_limit": settings.PARLEY_KNOWLEDGE_TEXT_MATCH_LIMIT,
        "use_vector": 0 if mode == "text" else 1, "use_text": 0 if mode == "vector" else 1,
        "max_distance": relevance_floor() if floor else None, "rerank": rerank,
        "min_match": MIN_SHOULD_MATCH, "relax": not _WEBSEARCH_SYNTAX.search(query),
        "partial_limit": min(PARTIAL_MATCH_SCAN, settings.PARLEY_KNOWLEDGE_TEXT_MATCH_LIMIT),
    }
    if rerank:
        params["k"] = max(k, RERANK_DEPTH)
    with transaction.atomic(), connection.cursor() as cursor:
        params["allowed"] = list(allowed.order_by().values_list("id", flat=True))
        if not params["allowed"]:
            return []
        # relaxed_order: results come back roughly ordered; they are re-ranked by distance above.
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute("SET LOCAL hnsw.ef_search = %s", [int(settings.PARLEY_KNOWLEDGE_EF_SEARCH)])
        if exact:
            cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(_SEARCH_SQL, params)
        rows = cursor.fetchall()
        if rerank and rows:
            cursor.execute("SELECT to_tsvector('english', %s)::text", [query])
            rows = _reranked(rows, query_lexemes=_lexeme_positions(cursor.fetchone()[0]))[:k]
    return [
        SearchResult(chunk_id=row[0], document_id=row[1], document_title=row[2], collection_id=row[3],
                     ordinal=row[4], text=row[5], start_offset=row[6], end_offset=row[7], token_count=row[8],
                     score=float(row[9]), vector_rank=row[10], text_rank=row[11],
                     distance=None if row[12] is None else float(row[12]), collection_name=row[13])
        for row in rows
    ]


_LEXEME = re.compile(r"'((?:[^']|'')*)'(?::([0-9A-D,]+))?")
_HEADING_WEIGHTS = ("A", "B")
PROXIMITY_WINDOW = 8  # word positions: a phrase of the query and a little slack


def _lexeme_positions(vector: str) -> dict[str, list[tuple[int, str]]]:
    """A tsvector's text form ('word':3A,17 ...) as lexeme -> [(position, weight)], D when unmarked."""
    parsed: dict[str, list[tuple[int, str]]] = {}
    for lexeme, positions in _LEXEME.findall(vector or ""):
        entries = []
        for item in positions.split(",") if positions else ():
            weight = item[-1] if item[-1] in "ABCD" else "D"
            entries.append((int(item.rstrip("ABCD")), weight))
        parsed[lexeme.replace("''", "'")] = entries
    return parsed


def _reranked(rows: list[tuple], *, query_lexemes: dict[str, list[tuple[int, str]]]) -> list[tuple]:
    """The rows in the order of an equal-weight rank fusion of their fused order and `_proximity`."""
    terms = list(query_lexemes)
    if not terms:
        return rows
    vectors = [_lexeme_positions(row[14]) for row in rows]
    # Rarer among the candidates is more telling: a word every candidate has separates none of them.
    frequency = {term: sum(1 for vector in vectors if term in vector) for term in terms}
    weights = {term: float(np.log(1 + len(rows) / (1 + frequency[term]))) for term in terms}
    scores = [_proximity(vector, weights) for vector in vectors]
    by_score = sorted(range(len(rows)), key=lambda index: -scores[index])
    lexical_rank = {index: rank for rank, index in enumerate(by_score, start=1)}
    fused = {index: 1 / (RRF_K + index + 1) + 1 / (RRF_K + lexical_rank[index]) for index in range(len(rows))}
    return [rows[index] for index in sorted(fused, key=lambda index: (-fused[index], index))]


def _proximity(vector: dict[str, list[tuple[int, str]]], weights: dict[str, float]) -> float:
    """How much of the query a passage holds, and how close together: the weighted share of the
    query's words it contains, plus the share in its title or heading, plus the largest weighted
    share found within PROXIMITY_WINDOW consecutive positions (0..3)."""
    total = sum(weights.values()) or 1.0
    present = {term: vector[term] for term in weights if term in vector}
    coverage = sum(weights[term] for term in present) / total
    context = sum(weights[term] for term, hits in present.items()
                  if any(weight in _HEADING_WEIGHTS for _, weight in hits)) / total
    hits = sorted((position, term) for term, entries in present.items() for position, _ in entries)
    best, start, inside = 0.0, 0, {}
    for position, term in hits:
        inside[term] = inside.get(term, 0) + 1
        while hits[start][0] < position - PROXIMITY_WINDOW:
            dropped = hits[start][1]
            inside[dropped] -= 1
            if not inside[dropped]:
                del inside[dropped]
            start += 1
        best = max(best, sum(weights[term] for term in inside))
    return coverage + context + best / total


def context_build(results: list[SearchResult], *, budget_tokens: int = CONTEXT_TOKENS
                  ) -> tuple[str, list[Citation]]:
    """Numbered sources, best first, until the token budget is spent; a passage that doesn't fit
    is shortened to what does, so the best source always gets in."""
    blocks, citations, used = [], [], 0
    for result in results:
        header = f"[{len(citations) + 1}] {result.document_title}\n"
        cost = token_estimate(header) + result.token_count + 1
        text = result.text
        if used + cost > budget_tokens:
            room = budget_tokens - used - token_estimate(header) - 1
            if room < 50:
                break
            text = _truncate_to_tokens(text, room)
            cost = token_estimate(header) + token_estimate(text) + 1
        number = len(citations) + 1
        blocks.append(f"[{number}] {result.document_title}\n{text}")
        citations.append(Citation(
            number=number, document_id=result.document_id, document_title=result.document_title,
            chunk_id=result.chunk_id, start_offset=result.start_offset, end_offset=result.end_offset,
            url=result.url, collection_id=result.collection_id, collection_name=result.collection_name,
            passage_url=passage_api_url(chunk_id=result.chunk_id),
        ))
        used += cost
    return "\n\n".join(blocks), citations


def _truncate_to_tokens(text: str, tokens: int) -> str:
    words, kept = text.split(" "), []
    for word in words:
        if token_estimate(" ".join([*kept, word])) > tokens:
            break
        kept.append(word)
    return " ".join(kept) + " …"


def context_for_chat(*, user: User, query: str, collection_ids: Iterable[int] | None = None,
                     collections: list[int] | None = None, k: int = 5, budget_tokens: int = CONTEXT_TOKENS,
                     embed_in_process: bool = False) -> tuple[str, list[dict[str, object]]]:
    """What a chat turn puts in the prompt: numbered sources and their citations as dicts (number,
    document_id, document_title, chunk_id, start_offset, end_offset, url, collection_id,
    collection_name, passage_url).

    `collection_ids` (or its older name `collections`) narrows the search to those collections;
    None means every collection the user may read, and an empty list means none. Ids the user may
    not read are dropped inside the search's SQL, so they neither widen it nor reveal that they exist.
    """
    wanted = collection_ids if collection_ids is not None else collections
    if wanted is not None:
        try:
            wanted = [int(collection_id) for collection_id in wanted]
        except (TypeError, ValueError):
            raise ApplicationError("Collections are given by their numeric ids.", code="invalid_collections")
        if not wanted:
            return "", []
    results = chunks_search(user=user, query=query, collections=wanted, k=k,
                            embed_in_process=embed_in_process, counts_as_request=False)
    text, citations = context_build(results, budget_tokens=budget_tokens)
    return text, [citation.as_dict() for citation in citations]


# "[2]", "[1, 3]", "[2-4]" (a range, with a hyphen or an en dash), as models write them.
_MARKER = re.compile(r"\[(\d{1,3}(?:\s*(?:,|-|–)\s*\d{1,3})*)\]")


def cited_numbers(answer: str) -> set[int]:
    """The source numbers an answer refers to with [n] markers."""
    numbers: set[int] = set()
    for group in _MARKER.findall(answer or ""):
        for part in group.split(","):
            ends = [int(end) for end in re.split(r"\s*[-–]\s*", part.strip())]
            if len(ends) == 2 and 0 < ends[1] - ends[0] < 50:
                numbers.update(range(ends[0], ends[1] + 1))
            else:
                numbers.update(ends)
    return numbers


def sources_cited(*, answer: str, sources: Sequence[S]) -> list[S]:
    """The sources the answer actually cites, in their own numbering; a marker with no such source
    (a model's invention) is ignored. `sources` are Citation objects or their dicts."""
    numbers = cited_numbers(answer)

    def number(source: S) -> int:
        return source["number"] if isinstance(source, dict) else source.number

    return sorted((source for source in sources if number(source) in numbers), key=number)
