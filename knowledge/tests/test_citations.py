"""Which sources an answer cites (knowledge.selectors.sources_cited), and the prompt that asks for
[n] markers."""

from __future__ import annotations

import pytest

from knowledge.answering import SYSTEM_PROMPT
from knowledge.selectors import CITATION_INSTRUCTIONS, Citation, cited_numbers, sources_cited


def _sources(count: int) -> list[dict]:
    return [{"number": n, "document_id": 10 + n, "document_title": f"Doc {n}", "chunk_id": 100 + n}
            for n in range(1, count + 1)]


@pytest.mark.parametrize(("answer", "numbers"), [
    ("The lamp is lit at dusk [2].", {2}),
    ("Lit at dusk [2][4], trimmed at dawn [1].", {1, 2, 4}),
    ("See [1, 3] and [2–3].", {1, 2, 3}),
    ("See [1-3].", {1, 2, 3}),
    ("No markers at all.", set()),
    ("A list [a] and [ 2 ] and [2.5] are not markers.", set()),
    ("", set()),
])
def test_cited_numbers(answer, numbers):
    assert cited_numbers(answer) == numbers


def test_only_the_sources_the_answer_marks_are_returned_in_their_numbering():
    sources = _sources(5)

    cited = sources_cited(answer="Fog horns sound every 30 s [4]. Lamps are trimmed at dusk [2][4].",
                          sources=sources)

    assert [s["number"] for s in cited] == [2, 4]
    assert cited[0] is sources[1]  # the caller's own objects, unchanged


def test_markers_for_sources_that_do_not_exist_are_ignored():
    assert sources_cited(answer="As [7] and [0] say, and [3].", sources=_sources(3)) == [_sources(3)[2]]
    assert sources_cited(answer="Nothing cited.", sources=_sources(3)) == []
    assert sources_cited(answer="[1]", sources=[]) == []


def test_citation_objects_work_too():
    citations = [Citation(number=n, document_id=n, document_title="t", chunk_id=n, start_offset=0, end_offset=1,
                          url="/") for n in (1, 2)]
    assert sources_cited(answer="Yes [2].", sources=citations) == [citations[1]]


def test_the_grounded_answer_prompt_asks_for_inline_markers():
    assert CITATION_INSTRUCTIONS in SYSTEM_PROMPT
    assert "[1]" in SYSTEM_PROMPT and "square brackets" in SYSTEM_PROMPT
    assert "{sources}" in SYSTEM_PROMPT
