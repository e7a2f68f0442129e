"""The guard that ends a looping reply (the SmolLM2 fallback once repeated one sentence 25 times)."""

from __future__ import annotations

from inference.repetition import RepetitionGuard


def _feed(guard: RepetitionGuard, text: str, step: int = 5) -> int | None:
    """The number of characters fed when the guard fired, or None."""
    for end in range(step, len(text) + step, step):
        if guard.push(text[end - step:end]):
            return end
    return None


def test_a_sentence_repeated_three_times_stops_the_reply_at_the_third():
    sentence = "The lighthouse keeper climbed the stairs again. "
    fired = _feed(RepetitionGuard(), "Once upon a time. " + sentence * 25)

    assert fired is not None
    assert fired <= len("Once upon a time. ") + 3 * len(sentence) + 16


def test_repeats_with_different_whitespace_still_count():
    text = "It is raining.\nIt is raining.  It is raining. It is raining.\n" * 2
    assert _feed(RepetitionGuard(min_period=10), text) is not None


def test_ordinary_prose_tables_and_lists_are_left_alone():
    prose = ("Lighthouses guide ships along dangerous coasts. Their lamps were fed with whale oil, then "
             "paraffin, and later electricity. Keepers lived on site, trimming wicks and winding clockwork. ")
    table = "| name | year |\n|---|---|\n| Skerry | 1872 |\n| Bell Rock | 1810 |\n| Eddystone | 1698 |\n"
    checklist = "- [ ] oil\n- [ ] wick\n- [ ] glass\n- [ ] log\n"

    for text in (prose * 2 + "The end.", table, checklist):
        assert _feed(RepetitionGuard(), text) is None, text
