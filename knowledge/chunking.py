"""Normalising extracted text and cutting it into overlapping passages for retrieval."""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

MIN_CHARS = 500
MAX_CHARS = 800
OVERLAP = 100

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")
_SPACES = re.compile(r"[^\S\n]+")
_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_BLANK_LINES = re.compile(r"\n\s*\n\s*")
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s)")
_TOKEN = re.compile(r"\w+|[^\w\s]")


HEADING_CHARS = 300


class Heading(str):
    """A piece an extractor found to be a heading (Markdown `#`, HTML h1-h6, a DOCX heading style):
    the passages that follow it are about it."""


@dataclass(frozen=True)
class TextSpan:
    """A passage: text[start:end] of the normalised document text, and the heading it sits under."""

    start: int
    end: int
    text: str
    heading: str = ""

    @property
    def token_count(self) -> int:
        return token_estimate(self.text)


def token_estimate(text: str) -> int:
    """Words plus punctuation marks: close to a BPE tokenizer's count for English prose."""
    return len(_TOKEN.findall(text))


def text_normalize(text: str) -> str:
    """NFKC, no control characters, single spaces, paragraphs separated by one blank line."""
    text = unicodedata.normalize("NFKC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text.replace("\t", " "))
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _HYPHEN_BREAK.sub(r"\1\2", text)  # words split across PDF lines
    return _BLANK_LINES.sub("\n\n", text).strip()


def _cut(text: str, low: int, high: int) -> int:
    """Where to end a passage within text[low:high]: a paragraph, else a sentence, else a word bound."""
    paragraph = text.rfind("\n\n", low, high)
    if paragraph != -1:
        return paragraph
    sentence_end = -1
    for match in _SENTENCE_END.finditer(text, low, high):
        sentence_end = match.end()
    if sentence_end != -1:
        return sentence_end
    for position in range(high, low - 1, -1):
        if text[position].isspace():
            return position
    return high  # one word longer than the window: cut it


def chunk_text(text: str, *, min_chars: int = MIN_CHARS, max_chars: int = MAX_CHARS,
               overlap: int = OVERLAP) -> list[TextSpan]:
    """Passages of min_chars..max_chars (the last may be shorter), each starting `overlap` characters
    (rounded back to a word start) before the previous one ended."""
    spans: list[TextSpan] = []
    length = len(text)
    start = _skip_space(text, 0)
    while start < length:
        if length - start <= max_chars:
            end = _trim_end(text, start, length)
            if end > start:
                spans.append(TextSpan(start, end, text[start:end]))
            break
        end = _trim_end(text, start, _cut(text, start + min_chars, start + max_chars))
        spans.append(TextSpan(start, end, text[start:end]))
        following = _word_start(text, end - overlap)
        if following <= start:  # a single enormous word: overlap by characters
            following = end - overlap
        start = _skip_space(text, following)
    return spans


def chunks_stream(pieces: Iterable[str], *, window: int = 24_000) -> Iterator[TextSpan]:
    """chunk_text over the normalised pieces joined by blank lines, without holding the whole text.

    Every `window` characters the buffer is cut: all passages but the last are final, and the next
    buffer starts where that last one started, so it is cut again with the text that follows.
    Each passage carries the nearest Heading piece at or before its middle (see `_Headings`).
    """
    buffer, base = "", 0
    headings = _Headings()
    for raw in pieces:
        piece = text_normalize(raw)
        if not piece:
            continue
        if isinstance(raw, Heading):
            headings.add(base + len(buffer) + (2 if buffer else 0), piece)
        buffer = f"{buffer}\n\n{piece}" if buffer else piece
        if len(buffer) < window:
            continue
        spans = chunk_text(buffer)
        for span in spans[:-1]:
            yield headings.attach(span, base)
        keep = spans[-1].start
        buffer, base = buffer[keep:], base + keep
        headings.forget_before(base)
    for span in chunk_text(buffer):
        yield headings.attach(span, base)


class _Headings:
    """Headings by their offset in the whole text. A passage gets the last one at or before its
    middle: one that starts a passage's second half names what most of it is about, while a passage
    that opens with the end of a section and turns to a new one half-way still belongs to the first."""

    def __init__(self) -> None:
        self.offsets: list[int] = []
        self.texts: list[str] = []

    def add(self, offset: int, text: str) -> None:
        self.offsets.append(offset)
        self.texts.append(" ".join(text.split())[:HEADING_CHARS])

    def attach(self, span: TextSpan, base: int) -> TextSpan:
        start, end = span.start + base, span.end + base
        index = bisect.bisect_right(self.offsets, (start + end) // 2) - 1
        return replace(span, start=start, end=end, heading=self.texts[index] if index >= 0 else "")

    def forget_before(self, offset: int) -> None:
        """Drop headings no later passage can use: all before `offset` but the last of them."""
        index = bisect.bisect_right(self.offsets, offset) - 1
        if index > 0:
            del self.offsets[:index], self.texts[:index]


def passage_embedding_text(*, title: str, heading: str, text: str) -> str:
    """What is embedded for a passage: the document's title and the passage's heading above its
    text, so that a passage that never names its subject is still found by it."""
    lines = [title.strip()]
    if heading.strip() and heading.strip().casefold() != title.strip().casefold():
        lines.append(heading.strip())
    context = "\n".join(line for line in lines if line)
    return f"{context}\n\n{text}" if context else text


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _trim_end(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


def _word_start(text: str, position: int) -> int:
    position = max(position, 0)
    while position > 0 and not text[position - 1].isspace():
        position -= 1
    return position
