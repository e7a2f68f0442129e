from __future__ import annotations

import random

import numpy as np
import pytest

from common.errors import ApplicationError
from knowledge.models import Chunk, Document
from knowledge.selectors import (
    chunks_search,
    collection_access,
    collections_readable,
    context_build,
    context_for_chat,
    relevance_floor,
)
from knowledge.tests.factories import document_ready
from knowledge.tests.world import INJECTION, VOCABULARY, world_build

pytestmark = [pytest.mark.django_db, pytest.mark.engine]  # registers the bundled models


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """Built once for the module inside a transaction that is rolled back at the end; each test
    runs in a savepoint of it (pytest-django's per-test atomic), so tests can't see each other's rows."""
    from django.db import transaction

    from inference.services import bundled_models_register

    with django_db_blocker.unblock(), transaction.atomic():
        bundled_models_register()
        yield world_build()
        transaction.set_rollback(True)


def test_readable_collections_and_access_levels(world):
    for user in (world.owner, world.member, world.outsider):
        assert {c.pk for c in collections_readable(user=user)} == world.readable[user.pk]
    assert collection_access(user=world.owner, collection=world.team) == "manage"
    assert collection_access(user=world.member, collection=world.team) == "write"
    assert collection_access(user=world.member, collection=world.shared) == "read"
    assert collection_access(user=world.outsider, collection=world.shared_with_outsider) == "read"
    assert collection_access(user=world.outsider, collection=world.private) is None


def test_hybrid_search_finds_the_answering_passage(world):
    results = chunks_search(user=world.owner, query="What does __exit__ receive when the with block raises?",
                            embed_in_process=True)

    assert len(results) == 5
    assert results[0].document_title == "with"
    assert results[0].score >= results[-1].score
    first = results[0]
    assert first.text == Chunk.objects.get(pk=first.chunk_id).text
    assert first.url == f"/app/knowledge/documents/{first.document_id}/?chunk={first.chunk_id}#chunk-{first.chunk_id}"
    assert all(r.vector_rank for r in results)  # a question: its words don't all occur in one passage

    # Keywords: websearch_to_tsquery (all words must occur) ranks the passages that have them.
    keyword = chunks_search(user=world.owner, query='"context manager" __exit__', embed_in_process=True)
    assert keyword[0].text_rank == 1 and keyword[0].document_title == "with"
    assert chunks_search(user=world.owner, query="zyzzyva", mode="text") == []



def test_the_keyword_leg_takes_passages_with_half_the_words_of_a_question(world):
    # A question's words are rarely all in its answer: "with" says "wrap the execution of a block with
    # methods defined by a context manager", and nothing has "pumpkin" or "giraffe".
    question = "Which statement wraps a block using a context manager, asked the pumpkin giraffe?"
    results = chunks_search(user=world.owner, query=question, mode="text")
    assert results and results[0].document_title == "with" and results[0].text_rank == 1

    # Passages with every word rank before those with half of them.
    ranked = chunks_search(user=world.owner, query="context manager exception block", mode="text", k=20)
    every_word = chunks_search(user=world.owner, query='"context" "manager" "exception" "block"', mode="text", k=20)
    assert 0 < len(every_word) < len(ranked)
    assert [r.chunk_id for r in ranked[:len(every_word)]] == [r.chunk_id for r in every_word]

    # One word of two is not enough, and websearch syntax (a quoted phrase, -word, or) means exactly what it says.
    assert chunks_search(user=world.owner, query="context giraffe", mode="text") == []
    assert chunks_search(user=world.owner, query='"context manager" pumpkin giraffe', mode="text") == []
    assert chunks_search(user=world.owner, query="context manager -giraffe -pumpkin", mode="text")
    excluding = chunks_search(user=world.owner, query="context manager block -execution", mode="text", k=20)
    assert all("execut" not in r.text.lower() for r in excluding)

def test_leak_200_random_queries_through_the_selector(world):
    rng = random.Random(5)
    users = [world.owner, world.member, world.outsider]
    all_ids = [c.pk for c in world.collections]
    seen: dict[int, set[int]] = {user.pk: set() for user in users}
    for index in range(200):
        user = users[index % 3]
        words = rng.sample(VOCABULARY, rng.randint(1, 4))
        query = " ".join(words) if index % 10 else INJECTION.format(private=world.private.pk, team=world.team.pk)
        # Sometimes ask for collections explicitly, including ones the user may not read.
        wanted = rng.sample(all_ids, rng.randint(1, len(all_ids))) if index % 4 == 0 else None
        # Random vectors are far from every passage: the relevance floor is off so they still reach them.
        results = chunks_search(user=user, query=query, collections=wanted, k=rng.choice([5, 10]),
                                query_vector=_random_unit(rng), mode=rng.choice(["hybrid", "vector", "text"]),
                                floor=False)
        allowed = world.readable[user.pk] & (set(wanted) if wanted else world.readable[user.pk])
        got = {r.collection_id for r in results}
        assert got <= allowed, (user.email, query, got - allowed)
        seen[user.pk] |= got
    # The test is only meaningful if users did get results from everything they may read.
    for user in users:
        assert seen[user.pk] == world.readable[user.pk]


def _random_unit(rng: random.Random) -> np.ndarray:
    vector = np.array([rng.gauss(0, 1) for _ in range(384)], dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_prompt_injection_in_a_document_does_not_widen_the_search(world):
    query = INJECTION.format(private=world.private.pk, team=world.team.pk)
    results = chunks_search(user=world.outsider, query=query, k=10, embed_in_process=True)

    assert results and results[0].document_title == "notes"
    assert {r.collection_id for r in results} <= world.readable[world.outsider.pk]


def test_selective_filter_still_returns_k(world):
    # One small document among many: iterative index scans keep going until k rows pass the filter.
    results = chunks_search(user=world.member, query="loop", collections=[world.shared.pk], k=10,
                            query_vector=_random_unit(random.Random(1)), mode="vector", floor=False)
    available = Chunk.objects.filter(collection=world.shared).count()
    assert len(results) == min(10, available)


def test_documents_not_ready_are_invisible(world):
    Document.objects.filter(collection=world.private).update(status="processing")
    results = chunks_search(user=world.owner, query="with statement context manager", k=10,
                            embed_in_process=True)
    assert results and world.private.pk not in {r.collection_id for r in results}


def test_query_limits(world):
    with pytest.raises(ApplicationError, match="limit is 2,000") as too_long:
        chunks_search(user=world.owner, query="x" * 2001)
    assert too_long.value.status == 400
    with pytest.raises(ApplicationError, match="empty"):
        chunks_search(user=world.owner, query="   ")


def test_context_build_numbers_sources_within_the_token_budget(world):
    # Ten sources whatever their distance: this is about the budget, not the floor.
    results = chunks_search(user=world.owner, query="exceptions try except finally", k=10, embed_in_process=True,
                            floor=False)
    text, citations = context_build(results, budget_tokens=2000)
    assert len(citations) == 10

    assert [c.number for c in citations] == list(range(1, len(citations) + 1))
    assert text.startswith(f"[1] {citations[0].document_title}\n")
    assert all(f"[{c.number}] " in text for c in citations)
    from knowledge.chunking import token_estimate

    assert token_estimate(text) <= 2000 + 5 * len(citations)

    small_text, small = context_build(results, budget_tokens=300)
    assert 1 <= len(small) < len(citations) and token_estimate(small_text) <= 320


def test_context_for_chat_returns_text_and_citation_dicts(world):
    text, citations = context_for_chat(user=world.member, query="How does a for loop use an iterator?",
                                       embed_in_process=True)

    assert text.startswith("[1] ")
    assert set(citations[0]) == {"number", "document_id", "document_title", "chunk_id", "start_offset",
                                 "end_offset", "url", "collection_id", "collection_name", "passage_url"}
    assert citations[0]["passage_url"] == f"/api/knowledge/passages/{citations[0]['chunk_id']}"
    assert {Document.objects.get(pk=c["document_id"]).collection_id for c in citations} <= \
        world.readable[world.member.pk]


# --------------------------------------------------------------------------- the relevance floor


def test_a_nonsense_query_finds_nothing_and_a_real_one_keeps_its_hits(world):
    floor = relevance_floor()
    assert floor == 0.70

    for nonsense in ("zxqv blorp", "qwertyuiop", "banana smoothie recipe"):
        assert chunks_search(user=world.owner, query=nonsense, k=10, embed_in_process=True) == [], nonsense
    # Without the floor the nearest neighbours come back anyway, however far they are.
    unfloored = chunks_search(user=world.owner, query="zxqv blorp", k=10, embed_in_process=True, floor=False)
    assert len(unfloored) == 10 and min(r.distance for r in unfloored) > floor

    results = chunks_search(user=world.owner, query="What does __exit__ receive when the with block raises?",
                            embed_in_process=True)
    assert len(results) == 5 and results[0].document_title == "with"
    assert all(r.distance <= floor or r.text_rank for r in results)
    assert results[0].relevance == round(1 - results[0].distance, 3) and results[0].collection_name == "Owner private"


def test_a_passage_with_every_word_of_the_query_passes_the_floor(world):
    # A single rare word embeds far from every passage, but the passages that contain it match.
    results = chunks_search(user=world.owner, query="suppressed", k=10, embed_in_process=True)

    assert results and all(r.text_rank is not None for r in results if r.distance > relevance_floor())
    assert all("suppress" in r.text.lower() for r in results if r.distance > relevance_floor())


def test_the_floor_is_a_setting(world, settings):
    settings.PARLEY_KNOWLEDGE_MAX_DISTANCE = 2
    assert relevance_floor() is None
    assert len(chunks_search(user=world.owner, query="zxqv blorp", k=3, embed_in_process=True)) == 3
    settings.PARLEY_KNOWLEDGE_MAX_DISTANCE = 0.01
    assert chunks_search(user=world.owner, query="How does a for loop use an iterator?", mode="vector",
                         embed_in_process=True) == []


def test_context_for_chat_applies_the_floor(world):
    assert context_for_chat(user=world.owner, query="zxqv blorp", embed_in_process=True) == ("", [])


# --------------------------------------------------------------------------- chat's collection restriction


def _collections_of(citations) -> set[int]:
    return {Document.objects.get(pk=c["document_id"]).collection_id for c in citations}


def test_context_for_chat_restricted_to_chosen_collections(world):
    query = "How does a for loop use an iterator? if statement lambda"
    text, citations = context_for_chat(user=world.member, query=query, collection_ids=[world.shared.pk],
                                       embed_in_process=True)
    assert citations and _collections_of(citations) == {world.shared.pk}
    assert all(c["collection_name"] == "Shared with member" for c in citations)

    # The older keyword does the same.
    _, same = context_for_chat(user=world.member, query=query, collections=[world.shared.pk], embed_in_process=True)
    assert [c["chunk_id"] for c in same] == [c["chunk_id"] for c in citations]


def test_context_for_chat_ignores_collections_the_user_may_not_read(world):
    query = "What does __exit__ receive when the with block raises? try except"
    # The member may not read the owner's private collection: asking for it alone gives nothing...
    assert context_for_chat(user=world.member, query=query, collection_ids=[world.private.pk],
                            embed_in_process=True) == ("", [])
    # ...and mixed with a readable one, only the readable one is searched.
    _, citations = context_for_chat(user=world.member, query=query,
                                    collection_ids=[world.private.pk, world.team.pk, 10**9], embed_in_process=True)
    assert citations and _collections_of(citations) == {world.team.pk}
    # An outsider naming every collection still reads only their own and those shared with them.
    _, citations = context_for_chat(user=world.outsider, query="import return pass del statement",
                                    collection_ids=[c.pk for c in world.collections], embed_in_process=True)
    assert citations and _collections_of(citations) <= world.readable[world.outsider.pk]


def test_context_for_chat_with_no_collections_chosen_uses_none(world):
    assert context_for_chat(user=world.owner, query="for loop", collection_ids=[], embed_in_process=True) == ("", [])
    with pytest.raises(ApplicationError) as bad:
        context_for_chat(user=world.owner, query="for loop", collection_ids=["abc"])
    assert bad.value.status == 400


def test_a_title_match_ranks_first_in_the_keyword_leg(world):
    # "lighthouse" is in one document's title only, and in the other's text three times.
    titled = document_ready(collection=world.private, user=world.owner, name="Lighthouse keeping.txt",
                            text="Trim the wicks and polish the lens each evening before the lamp is lit.")
    document_ready(collection=world.private, user=world.owner, name="Harbour log.txt",
                   text="The lighthouse was dark. A lighthouse keeper rowed out; the lighthouse shone again.")

    results = chunks_search(user=world.owner, query="lighthouse", mode="text")

    assert [r.document_id for r in results][:1] == [titled.pk] and len(results) == 2


def test_reranking_reorders_only_what_the_caller_may_read(world):
    rng = random.Random(7)
    users = [world.owner, world.member, world.outsider]
    seen: dict[int, set[int]] = {user.pk: set() for user in users}
    reordered = 0
    for index in range(60):
        user = users[index % 3]
        query = " ".join(rng.sample(VOCABULARY, rng.randint(1, 4)))
        vector = _random_unit(rng)
        plain = chunks_search(user=user, query=query, k=5, query_vector=vector, floor=False)
        reranked = chunks_search(user=user, query=query, k=5, query_vector=vector, floor=False, rerank=True)
        got = {r.collection_id for r in reranked}
        assert got <= world.readable[user.pk], (user.email, query, got - world.readable[user.pk])
        assert len(reranked) == len(plain)
        reordered += [r.chunk_id for r in reranked] != [r.chunk_id for r in plain]
        seen[user.pk] |= got
    for user in users:
        assert seen[user.pk] == world.readable[user.pk]
    assert reordered  # reranking did change some orders, so the checks above saw it at work


def test_the_proximity_reranker_lifts_a_passage_with_the_query_words_together_in_its_heading():
    from knowledge.selectors.search import _lexeme_positions, _reranked

    assert _lexeme_positions("'it''s':3 'lamp':1A,5 'oil'") == {"it's": [(3, "D")], "lamp": [(1, "A"), (5, "D")],
                                                                "oil": []}
    body_only = "'harbour':1 'lamp':4 'log':2 'oil':90"
    neither = "'harbour':1 'log':2"
    together = "'fill':5 'lamp':1B 'oil':2B"
    rows = [(index, *[None] * 13, vector) for index, vector in enumerate([body_only, neither, neither, together])]

    reranked = _reranked(rows, query_lexemes=_lexeme_positions("'lamp':1 'oil':2"))

    # An equal-weight fusion with the fused order: fourth and lexically first ends second.
    assert [row[0] for row in reranked] == [0, 3, 1, 2]
    assert _reranked(rows, query_lexemes={}) == rows  # a query of stop words only leaves the order alone
