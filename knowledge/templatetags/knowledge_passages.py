"""`{% passage_snippet text query %}`: a passage as plain text with the query's words marked
(knowledge.passages); everything from the document is escaped."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from knowledge.passages import passage_plain
from knowledge.passages import passage_snippet as _passage_snippet

register = template.Library()


@register.simple_tag
def passage_snippet(text: str, query: str, limit: int = 600) -> SafeString:
    return _passage_snippet(text, query, limit=limit)


@register.filter(name="passage_plain")
def passage_plain_filter(text: str) -> str:
    """The passage without Markdown syntax; still plain text, so autoescaping applies after it."""
    return passage_plain(text)


@register.filter
def percent(value: float | None) -> int:
    """0..1 as a whole percentage (for relevance bars)."""
    return round((value or 0) * 100)
