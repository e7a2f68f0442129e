"""Text out of uploaded files: PDF, DOCX, HTML, Markdown and plain text.

Extractors yield the text in pieces (a page, a paragraph, a block of lines) so that a large
file flows through chunking and embedding without its whole text being held at once, and they
report how far through the file they are for the progress bar.
"""

from __future__ import annotations

import codecs
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

KIND_MIMES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "html": "text/html",
    "markdown": "text/markdown",
    "text": "text/plain",
}
SUPPORTED = "PDF, DOCX, HTML, Markdown (.md) or plain text (.txt)"
_EXTENSIONS = {
    ".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html", ".xhtml": "html",
    ".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".rst": "text",
    ".csv": "text", ".log": "text",
}
_READ_BYTES = 64 * 1024


class ExtractionError(Exception):
    """The file cannot be turned into text; the message tells the user why and what to do."""


def kind_detect(*, path: Path, filename: str, mime: str = "") -> str:
    """One of KIND_MIMES' keys, from the file's first bytes, then its name, then its declared type."""
    with path.open("rb") as handle:
        head = handle.read(8192)
    suffix = Path(filename).suffix.lower()
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        if suffix == ".docx" or mime == KIND_MIMES["docx"]:
            return "docx"
        raise ExtractionError(f"Unsupported file type: {filename} is a ZIP archive. Upload {SUPPORTED}.")
    by_name = _EXTENSIONS.get(suffix)
    if by_name in ("pdf", "docx"):
        raise ExtractionError(f"{filename} is named like a {by_name.upper()} file but its content is not one; "
                              "the file may be damaged. Export it again and re-upload.")
    if _looks_binary(head):
        raise ExtractionError(f"Unsupported file type: {filename} is not a text document. Upload {SUPPORTED}.")
    if by_name:
        return by_name
    if mime.startswith("text/html") or re.match(rb"\s*(<!doctype html|<html)", head[:512], re.IGNORECASE):
        return "html"
    if mime in ("text/markdown", "text/x-markdown"):
        return "markdown"
    if mime.startswith("text/") or not suffix:
        return "text"
    raise ExtractionError(f"Unsupported file type {suffix!r} ({filename}). Upload {SUPPORTED}.")


def _looks_binary(head: bytes) -> bool:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    return b"\x00" in head


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
            yield block if isinstance(block, str) else block.text

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
        for piece in self._text():
            piece = _MD_IMAGE.sub(r"\1", piece)
            piece = _MD_LINK.sub(r"\1", piece)
            yield _MD_COMMENT.sub("", piece)

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
_BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "aside", "header", "li", "ul", "ol", "dl", "dt", "dd", "table",
    "tr", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "br", "hr", "figure", "figcaption",
    "address", "details", "summary", "form", "fieldset", "body",
}


def _html_blocks(root) -> Iterator[str]:
    """The visible text, one piece per block element, inline markup flattened."""
    parts: list[str] = []

    def walk(element) -> Iterator[str]:
        tag = element.tag if isinstance(element.tag, str) else ""
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
