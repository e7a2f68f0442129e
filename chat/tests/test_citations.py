"""Which sources a finished reply lists: those its [n] markers cite, or, with no marker, all it was given."""

from __future__ import annotations

from chat.turns import citations_used

SOURCES = [{"number": 1, "title": "fog signals"}, {"number": 2, "title": "lamp rooms"},
           {"number": 3, "title": "tides"}]


def test_a_reply_with_markers_lists_only_the_sources_it_cites():
    used = citations_used("Horns sound every minute [2]. Lamps turn [2][3] and [9] is invented.", SOURCES)
    assert [(c["number"], c["cited"]) for c in used] == [(2, True), (3, True)]


def test_a_reply_without_markers_keeps_its_sources_as_consulted():
    used = citations_used("Horns sound every minute.", SOURCES)
    assert [(c["number"], c["cited"]) for c in used] == [(1, False), (2, False), (3, False)]
    assert citations_used("Anything [1].", []) == []
