"""Text out of uploaded files: PDF, DOCX, HTML, Markdown and plain text.

Extractors yield the text in pieces (a page, a paragraph, a block of lines) so that a large
file flows through chunking and embedding without its whole text being held at once, and they
report how far through the file they are for the progress bar. A heading the format marks
(Markdown `#`, HTML h1-h6, a Word heading style) is its own piece, a `Heading`, so that the
passages under it can be embedded with it; PDF and plain text mark none.
"""

from __future__ import annotations

import codecs
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from knowledge.chunking import Heading

KIND_MIMES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "html": "text/html",
    "markdown": "text/markdown",
    "text": "text/plain",
}
SUPPORTED = "PDF, DOCX, HTML, Markdown or plain UTF-8 text (text may have any name, such as notes.txt or LICENSE)"
_EXTENSIONS = {
    ".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html", ".xhtml": "html",
    ".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".rst": "text",
    ".csv": "text", ".log": "text",
}
KNOWN_EXTENSIONS = frozenset(_EXTENSIONS)
_READ_BYTES = 64 * 1024
SNIFF_BYTES = 8192
# Formats we recognise but cannot read, so the refusal can name what the file is. Only signatures
# that plain text never starts with: the rest is caught as binary by the text test.
_OTHER_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"), (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office file (.doc, .xls or .ppt)"),
    (b"{\\rtf", "an RTF document"), (b"\x1f\x8b", "a gzip archive"),
    (b"\xfd7zXZ\x00", "an xz archive"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"), (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x28\xb5\x2f\xfd", "a Zstandard archive"), (b"\x7fELF", "a program (ELF)"),
    (b"SQLite format 3\x00", "an SQLite database"), (b"OggS", "an Ogg audio file"),
    (b"fLaC", "a FLAC audio file"), (b"\x00asm", "a WebAssembly module"), (b"%!PS", "a PostScript file"),
)
_HTML_START = re.compile(rb"\s*(<!--.*?-->\s*)*(<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>])",
                         re.IGNORECASE | re.DOTALL)
_UTF8_BOM = codecs.BOM_UTF8


class ExtractionError(Exception):
    """The file cannot be turned into text; the message tells the user why and what to do."""


def kind_detect(*, path: Path, filename: str, mime: str = "") -> str:
    """One of KIND_MIMES' keys for the file at `path` (see `kind_sniff`)."""
    with path.open("rb") as handle:
        return kind_sniff(handle=handle, filename=filename, mime=mime)


def kind_sniff(*, handle: BinaryIO, filename: str, mime: str = "") -> str:
    """One of KIND_MIMES' keys, decided by the content first and the name second.

    The first bytes say PDF, ZIP (a DOCX if its parts say so) or a known unreadable format; else
    the content must be text. A known extension must agree with the content (a ".pdf" that isn't
    one is refused rather than guessed at); a name without one (LICENSE, Apache-2.0, notes.v2) is
    taken as text when its bytes are UTF-8 (or UTF-16 with a BOM), free of NULs, and mostly printable.
    Leaves `handle` at the start. Raises ExtractionError with what was wrong and what is accepted.
    """
    start = handle.tell()
    head = handle.read(SNIFF_BYTES)
    handle.seek(start)
    suffix = Path(filename).suffix.lower()
    by_name = _EXTENSIONS.get(suffix)
    if head.startswith(b"%PDF-"):
        if by_name not in (None, "pdf"):
            raise ExtractionError(_contradiction(filename, by_name, "a PDF"))
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        if by_name == "docx" or (by_name is None and suffix != ".zip"
                                 and (mime == KIND_MIMES["docx"] or _zip_is_docx(handle))):
            return "docx"
        if by_name is not None:
            raise ExtractionError(_contradiction(filename, by_name, "a ZIP archive"))
        raise ExtractionError(_refusal(f"Unsupported file type: {filename} is a ZIP archive; unpack it and "
                                       "upload the documents inside."))
    if by_name in ("pdf", "docx"):
        raise ExtractionError(_refusal(f"{filename} is named like a {by_name.upper()} file but its content is not "
                                       "one; the file may be damaged, so export it again and re-upload."))
    what = next((label for magic, label in _OTHER_MAGIC if head.startswith(magic)), None)
    if what is None:
        what = _not_text_reason(head, lenient=by_name is not None)
    if what is not None:
        if by_name is not None:
            raise ExtractionError(_contradiction(filename, by_name, what))
        raise ExtractionError(_refusal(f"Unsupported file type: {filename} is {what}."))
    if by_name:
        return by_name
    if mime.startswith("text/html") or _HTML_START.match(head.removeprefix(_UTF8_BOM)):
        return "html"
    if mime in ("text/markdown", "text/x-markdown"):
        return "markdown"
    return "text"


def _contradiction(filename: str, by_name: str, what: str) -> str:
    named = {"html": "an HTML", "markdown": "a Markdown", "text": "a text"}.get(by_name, f"a {by_name.upper()}")
    return _refusal(f"{filename} is named like {named} file, but its content is {what}. Rename it to match "
                    "what it is.")


def _refusal(problem: str) -> str:
    return f"{problem} Accepted: {SUPPORTED}."


def _zip_is_docx(handle: BinaryIO) -> bool:
    start = handle.tell()
    try:
        with zipfile.ZipFile(handle) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    finally:
        handle.seek(start)


def _not_text_reason(head: bytes, *, lenient: bool) -> str | None:
    """None if `head` reads as text: UTF-8 (or UTF-16 with a BOM), no NUL bytes, at least 95% printable.

    `lenient` (the name says text) lets other 8-bit encodings through as before: they are read as
    UTF-8 with replacement characters, which beats refusing a Latin-1 .txt."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = head[: len(head) - len(head) % 2].decode("utf-16")
        except UnicodeDecodeError:
            return "binary data, not text"
    elif b"\x00" in head:
        return "binary data, not text (it contains NUL bytes)"
    else:
        # The sniffed block may end inside a character: the incremental decoder keeps that tail pending.
        decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
        try:
            text = decoder.decode(head, final=len(head) < SNIFF_BYTES)
        except UnicodeDecodeError:
            if not lenient:
                return "neither a known document format nor UTF-8 text (if it is text, save it as UTF-8)"
            text = head.decode("utf-8", errors="replace")
    if text and sum(1 for char in text if char.isprintable() or char in "\t\n\r\f\v") / len(text) < 0.95:
        return "binary data, not text"
    return None


class Extraction:
    """Iterate for text pieces; `fraction` says how much of the file has been read (0..1)."""

    def __init__(self, *, path: Path, kind: str, filename: str) -> None:
        self.path, self.kind, self.filename = path, kind, filename
        self.fraction = 0.0

    def __iter__(self) -> Iterator[str]:
        yield from getattr(self, f"_{self.kind}")()
        self.fraction = 1.0

    # ----------------------------------------------------------------------- formats

    def _pdf(self) -> Iterator[str]:
        import pypdf
        from pypdf.errors import FileNotDecryptedError, PdfReadError

        try:
            reader = pypdf.PdfReader(str(self.path), strict=False)
            if reader.is_encrypted:
                # An empty user password still allows reading; anything else needs the password.
                try:
                    if not reader.decrypt(""):
                        raise ExtractionError(self._encrypted())
                except (FileNotDecryptedError, NotImplementedError):
                    raise ExtractionError(self._encrypted())
            pages = len(reader.pages)
        except ExtractionError:
            raise
        except (PdfReadError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
            raise ExtractionError(f"{self.filename} is not a readable PDF ({exc}). The file may be damaged; "
                                  "export it again and re-upload.")
        for number in range(pages):
            try:
                text = reader.pages[number].extract_text() or ""
            except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                raise ExtractionError(f"Page {number + 1} of {self.filename} could not be read ({exc}). "
                                      "The file may be damaged; export it again and re-upload.")
            self.fraction = (number + 1) / max(pages, 1)
            yield text

    def _encrypted(self) -> str:
        return (f"{self.filename} is an encrypted (password-protected) PDF. Remove the password, "
                "for example by printing it to a new PDF, and upload it again.")

    def _docx(self) -> Iterator[str]:
        import docx
        from docx.opc.exceptions import PackageNotFoundError

        self._zip_check()
        try:
            document = docx.Document(str(self.path))
        except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise ExtractionError(f"{self.filename} is not a readable Word document ({exc}). "
                                  "Save it again as .docx and re-upload.")
        except Exception as exc:  # noqa: BLE001 - a malformed package can fail anywhere inside python-docx
            raise ExtractionError(f"{self.filename} is not a readable Word document ({exc.__class__.__name__}). "
                                  "Save it again as .docx and re-upload.")
        blocks = list(document.paragraphs)
        for table in document.tables:
            for row in table.rows:
                blocks.append(" | ".join(cell.text for cell in row.cells))
        for index, block in enumerate(blocks):
            self.fraction = (index + 1) / len(blocks)
            if isinstance(block, str):
                yield block
            elif _docx_is_heading(block):
                yield Heading(block.text)
            else:
                yield block.text

    def _zip_check(self) -> None:
        """Refuse archives that would expand far beyond their size (a zip bomb) before unpacking."""
        limit = settings.PARLEY_KNOWLEDGE_MAX_UNPACKED_BYTES
        try:
            with zipfile.ZipFile(self.path) as archive:
                members = archive.infolist()
        except zipfile.BadZipFile as exc:
            raise ExtractionError(f"{self.filename} is not a readable Word document ({exc}). "
                                  "Save it again as .docx and re-upload.")
        # Sizes in the headers are what zipfile enforces while reading (a member that inflates
        # past its declared size fails its check), so summing them is a safe bound.
        unpacked = sum(member.file_size for member in members)
        packed = max(sum(member.compress_size for member in members), 1)
        if unpacked > limit or (unpacked > 10 * 1024 * 1024 and unpacked / packed > 100):
            raise ExtractionError(
                f"{self.filename} expands to {unpacked / 1024 / 1024:,.0f} MB from {packed / 1024:,.0f} KB, which "
                f"looks like a zip bomb (the limit is {limit / 1024 / 1024:,.0f} MB unpacked). It was not opened."
            )

    def _html(self) -> Iterator[str]:
        import lxml.html
        from lxml.etree import ParserError

        try:
            root = lxml.html.parse(str(self.path)).getroot()
        except (ParserError, ValueError, OSError) as exc:
            raise ExtractionError(f"{self.filename} is not readable HTML ({exc}).")
        if root is None:
            return
        for element in root.xpath("//script|//style|//noscript|//template|//head|//svg|//nav|//footer"):
            element.drop_tree()
        yield from _html_blocks(root)

    def _markdown(self) -> Iterator[str]:
        """Blocks of lines, with each heading (`# Title`, or a line underlined with === or ---) its own
        piece; a `#` inside a fenced code block is a comment, not a heading."""
        fenced = False

        def clean(lines: list[str]) -> str:
            text = _MD_IMAGE.sub(r"\1", "\n".join(lines))
            text = _MD_LINK.sub(r"\1", text)
            return _MD_COMMENT.sub("", text)

        for piece in self._text():
            lines: list[str] = []
            for line in piece.split("\n"):
                if _MD_FENCE.match(line):
                    fenced = not fenced
                heading = None if fenced else _MD_ATX.match(line)
                if heading:
                    yield clean(lines)
                    lines = []
                    yield Heading(clean([heading.group(1)]))
                elif not fenced and _MD_SETEXT.match(line) and lines and lines[-1].strip():
                    title = lines.pop()
                    yield clean(lines)
                    lines = []
                    yield Heading(clean([title]))
                else:
                    lines.append(line)
            yield clean(lines)

    def _text(self) -> Iterator[str]:
        """The file in blocks of whole lines, decoded as it is read (UTF-8, or UTF-16 with a BOM)."""
        size = max(self.path.stat().st_size, 1)
        with self.path.open("rb") as handle:
            head = handle.read(4)
            handle.seek(0)
            encoding = "utf-16" if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
            decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
            pending, done = "", 0
            while block := handle.read(_READ_BYTES):
                done += len(block)
                pending += decoder.decode(block)
                cut = pending.rfind("\n")
                if cut == -1 and len(pending) < 4 * _READ_BYTES:
                    continue
                cut = cut if cut != -1 else len(pending)
                self.fraction = done / size
                yield pending[:cut]
                pending = pending[cut:]
            pending += decoder.decode(b"", final=True)
            if pending:
                yield pending


_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MD_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_MD_ATX = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_MD_SETEXT = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
_MD_FENCE = re.compile(r"^ {0,3}(?:```|~~~)")
_HEADING_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "aside", "header", "li", "ul", "ol", "dl", "dt", "dd", "table",
    "tr", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "br", "hr", "figure", "figcaption",
    "address", "details", "summary", "form", "fieldset", "body",
}


def _docx_is_heading(paragraph) -> bool:
    try:
        name = (paragraph.style.name or "") if paragraph.style is not None else ""
    except (AttributeError, KeyError, ValueError):  # a style the package references but does not define
        return False
    return name.startswith("Heading") or name == "Title"


def _html_blocks(root) -> Iterator[str]:
    """The visible text, one piece per block element, inline markup flattened."""
    parts: list[str] = []

    def walk(element) -> Iterator[str]:
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag.lower() in _HEADING_TAGS:
            if parts:
                yield " ".join(parts)
                parts.clear()
            yield Heading(element.text_content())
            if element.tail:
                parts.append(element.tail)
            return
        block = tag.lower() in _BLOCK_TAGS
        if block and parts:
            yield " ".join(parts)
            parts.clear()
        if element.text and tag:
            parts.append(element.text)
        for child in element:
            yield from walk(child)
        if block and parts:
            yield " ".join(parts)
            parts.clear()
        if element.tail:
            parts.append(element.tail)

    yield from walk(root)
    if parts:
        yield " ".join(parts)
