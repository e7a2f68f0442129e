"""Passages as readers see them in search results and side panels: plain text, never the
document's own markup, with the query's words marked.

Stored passages keep the document's text as extracted, so a Markdown file's passages still carry
`#`, `**`, backticks and fences. They are shown as text: the syntax is stripped here and whatever
is left is HTML-escaped, so a document can never put markup on the page.
"""

from __future__ import annotations

import re

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*$", re.MULTILINE)
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
_UNDERLINE = re.compile(r"^[ \t]*(?:={3,}|-{3,})[ \t]*$", re.MULTILINE)  # setext headings, rules
_RULE = re.compile(r"^[ \t]*([*_])(?:[ \t]*\1){2,}[ \t]*$", re.MULTILINE)
_QUOTE = re.compile(r"^[ \t]*(?:>[ \t]?)+", re.MULTILINE)
_BULLET = re.compile(r"^([ \t]*)[-*+][ \t]+(?:\[[ xX]\][ \t]+)?", re.MULTILINE)
_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)*\|?[ \t]*\n?", re.MULTILINE)
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\([^)\n]*\)")
_LINK = re.compile(r"\[([^\]\n]+)\]\([^)\n]*\)")
_REF_LINK = re.compile(r"\[([^\]\n]+)\]\[[^\]\n]*\]")
_REF_DEFINITION = re.compile(r"^[ \t]{0,3}\[[^\]\n]+\]:[ \t]+\S+.*$", re.MULTILINE)
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
# Asterisk emphasis anywhere; underscore emphasis only around several words, so identifiers such
# as __exit__ or snake_case survive (CommonMark would embolden __exit__; a reader wants the name).
_STRONG = re.compile(r"(?<![\w*])\*\*(?=[^\s*])(.+?)(?<=[^\s*])\*\*(?![\w*])", re.DOTALL)
_EMPHASIS = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
_UNDERSCORES = re.compile(r"(?<!\w)(__?)(?=\S)([^_\n]*\s[^_\n]*?)(?<=\S)\1(?!\w)")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")

_WORD = re.compile(r"\w+")
# Words too common to be worth marking (PostgreSQL's English configuration ignores them too).
_STOPWORDS = frozenset(
    "a an and are as at be been but by can could did do does for from had has have how i if in into is it its "
    "me my no not of on or our she so than that the their them then there these they this those to was we "
    "were what when where which who whom why will with would you your".split()
)


def passage_plain(text: str) -> str:
    """The passage as readable text: Markdown headings, emphasis, links, code and fences removed."""
    text = _FENCE.sub("", text or "")
    text = _HEADING.sub(r"\1", text)
    text = _TABLE_RULE.sub("", text)
    text = _UNDERLINE.sub("", text)
    text = _RULE.sub("", text)
    text = _QUOTE.sub("", text)
    text = _BULLET.sub(r"\1• ", text)
    text = _REF_DEFINITION.sub("", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _CODE.sub(lambda match: match.group(2).strip(), text)
    text = _STRONG.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\1", text)
    text = _UNDERSCORES.sub(r"\2", text)
    text = _STRIKE.sub(r"\1", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


def query_terms_pattern(query: str) -> re.Pattern[str] | None:
    """A case-insensitive pattern for the query's words (longer words also in other forms:
    "exceptions" marks "exception"), or None if the query has no word worth marking."""
    alternatives = set()
    for word in _WORD.findall((query or "").lower()):
        if len(word) < 2 or word in _STOPWORDS:
            continue
        if len(word) >= 4:
            stem = re.sub(r"(ing|ed|es|s)$", "", word)
            stem = stem if len(stem) >= 3 else word
            alternatives.add(re.escape(stem) + r"[^\W_]*")
        else:
            alternatives.add(re.escape(word) + r"(?![^\W_])")
    if not alternatives:
        return None
    ordered = sorted(alternatives, key=len, reverse=True)
    # Word edges are letters and digits only, so "exit" is marked inside __exit__ and snake_case.
    return re.compile(r"(?<![^\W_])(?:" + "|".join(ordered) + ")", re.IGNORECASE)


def passage_snippet(text: str, query: str, *, limit: int = 600) -> SafeString:
    """HTML for a search result: the plain passage (around the first match if it is long), escaped,
    with the query's words in <mark>."""
    plain = passage_plain(text)
    pattern = query_terms_pattern(query)
    if len(plain) > limit:
        first = pattern.search(plain) if pattern else None
        start = 0
        if first is not None and first.start() > limit // 3:
            start = plain.rfind(" ", 0, first.start() - limit // 4) + 1
        end = plain.rfind(" ", start, start + limit)
        end = end if end > start else start + limit
        plain = ("… " if start else "") + plain[start:end].strip() + (" …" if end < len(plain) else "")
    if pattern is None:
        return mark_safe(escape(plain))  # escaped just now
    parts, last = [], 0
    for match in pattern.finditer(plain):
        parts.append(escape(plain[last:match.start()]))
        parts.append(f"<mark>{escape(match.group(0))}</mark>")
        last = match.end()
    parts.append(escape(plain[last:]))
    return mark_safe("".join(parts))  # every piece of text is escaped above
