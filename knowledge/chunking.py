"""Normalising extracted text and cutting it into overlapping passages for retrieval."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

MIN_CHARS = 500
MAX_CHARS = 800
OVERLAP = 100

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")
_SPACES = re.compile(r"[^\S\n]+")
_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_BLANK_LINES = re.compile(r"\n\s*\n\s*")
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s)")
_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class TextSpan:
    """A passage: text[start:end] of the normalised document text."""

    start: int
    end: int
    text: str

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
    """
    buffer, base = "", 0
    for raw in pieces:
        piece = text_normalize(raw)
        if not piece:
            continue
        buffer = f"{buffer}\n\n{piece}" if buffer else piece
        if len(buffer) < window:
            continue
        spans = chunk_text(buffer)
        for span in spans[:-1]:
            yield TextSpan(span.start + base, span.end + base, span.text)
        keep = spans[-1].start
        buffer, base = buffer[keep:], base + keep
    for span in chunk_text(buffer):
        yield TextSpan(span.start + base, span.end + base, span.text)


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
