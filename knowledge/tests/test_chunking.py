from __future__ import annotations

import random
import re

import pytest

from knowledge.chunking import MAX_CHARS, MIN_CHARS, OVERLAP, chunk_text, chunks_stream, text_normalize, token_estimate

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()


def prose(seed: int, paragraphs: int = 12) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(paragraphs):
        sentences = []
        for _ in range(rng.randint(1, 9)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(4, 30))]
            sentences.append(" ".join(words).capitalize() + rng.choice(".?!"))
        out.append(" ".join(sentences))
    return "\n\n".join(out)


@pytest.mark.parametrize("seed", range(8))
def test_passages_are_500_to_800_characters_with_overlap_and_exact_offsets(seed):
    text = text_normalize(prose(seed))
    spans = chunk_text(text)

    assert len(spans) > 3
    for span in spans:
        assert text[span.start:span.end] == span.text
        assert span.text == span.text.strip()
    for span in spans[:-1]:
        assert MIN_CHARS <= len(span.text) <= MAX_CHARS
    assert len(spans[-1].text) <= MAX_CHARS
    for before, after in zip(spans, spans[1:], strict=False):
        overlap = before.end - after.start
        assert OVERLAP <= overlap <= OVERLAP + 40  # rounded back to the start of a word
        assert after.start == 0 or text[after.start - 1].isspace()
    # The passages cover the whole text.
    assert spans[0].start == 0 and spans[-1].end == len(text)


def test_cuts_prefer_paragraphs_then_sentences_then_words():
    para = "First paragraph sentence number one is here. " * 13  # ~585 characters
    text = para.strip() + "\n\n" + "Second paragraph goes on. " * 40
    assert chunk_text(text)[0].text == para.strip()  # ends at the paragraph break

    sentences = " ".join(f"Sentence {i} says a few words here." for i in range(60))
    first = chunk_text(sentences)[0].text
    assert first.endswith(".") and MIN_CHARS <= len(first) <= MAX_CHARS

    words = " ".join(["word"] * 400)  # no sentence ends: cut between words
    spans = chunk_text(words)
    assert all(span.text.split(" ") == ["word"] * len(span.text.split(" ")) for span in spans)


def test_a_word_longer_than_a_passage_is_cut_hard():
    spans = chunk_text("x" * 2000)
    assert [len(s.text) for s in spans][:2] == [MAX_CHARS, MAX_CHARS]
    assert spans[1].start == MAX_CHARS - OVERLAP


def test_short_and_empty_text():
    assert chunk_text("") == []
    assert [s.text for s in chunk_text("  Just this.  ")] == ["Just this."]


def test_normalize():
    raw = "Title\r\n\r\n\r\nSome\ttext  with   spaces\x00 and a hyph-\nenated word.\n\n\n\nEnd \ufb01le"
    assert text_normalize(raw) == "Title\n\nSome text with spaces and a hyphenated word.\n\nEnd file"


def test_streaming_gives_valid_passages_with_offsets_into_the_joined_text():
    pieces = [prose(seed, paragraphs=30) for seed in range(6)]
    joined = "\n\n".join(text_normalize(p) for p in pieces)
    spans = list(chunks_stream(pieces, window=3000))

    assert [s.text for s in spans] == [joined[s.start:s.end] for s in spans]
    assert all(MIN_CHARS <= len(s.text) <= MAX_CHARS for s in spans[:-1])
    assert spans[-1].end == len(joined)
    assert all(b.start < a.end for a, b in zip(spans, spans[1:], strict=False))  # overlapping, in order


def test_token_estimate_counts_words_and_punctuation():
    assert token_estimate("Hello, world!") == 4
    assert token_estimate("") == 0
    assert re.fullmatch(r"\d+", str(token_estimate("a " * 10)))


def test_each_passage_carries_the_heading_it_sits_under():
    from knowledge.chunking import Heading

    first, second = prose(1, paragraphs=6), prose(2, paragraphs=6)
    spans = list(chunks_stream(["Preface words before any heading.", Heading("Fog signals"), first,
                                Heading("  Lamp   oil "), second], window=1500))

    assert {span.heading for span in spans} == {"Fog signals", "Lamp oil"}
    text = "Preface words before any heading.\n\nFog signals\n\n" + text_normalize(first) + "\n\nLamp oil"
    lamp_oil = len(text) - len("Lamp oil")
    for span in spans:
        middle = (span.start + span.end) // 2
        # The heading at or before the passage's middle, also across the window's cuts.
        assert span.heading == ("Lamp oil" if middle >= lamp_oil else "Fog signals" if middle >= 35 else "")
    assert [span.text for span in spans] == [span.text for span in chunks_stream(
        ["Preface words before any heading.", "Fog signals", first, "Lamp oil", second], window=1500)]


def test_the_embedded_text_is_the_passage_under_its_title_and_heading():
    from knowledge.chunking import passage_embedding_text

    assert passage_embedding_text(title="Lighthouse manual", heading="Lamp oil", text="Fill it weekly.") == \
        "Lighthouse manual\nLamp oil\n\nFill it weekly."
    # A heading that repeats the title is said once; no title and no heading leave the text alone.
    assert passage_embedding_text(title="Lamp oil", heading="lamp oil", text="x") == "Lamp oil\n\nx"
    assert passage_embedding_text(title="", heading="", text="x") == "x"
