"""Deciding a file's type from its content (knowledge.extraction.kind_sniff): magic bytes first,
then UTF-8 text sniffing for names without a known extension; contradictions are refused."""

from __future__ import annotations

import codecs
import io

import pytest

from knowledge.extraction import SUPPORTED, ExtractionError, kind_sniff
from knowledge.tests.files import docx_bytes, pdf_bytes, zip_bomb_bytes

LICENSE = "Apache License\nVersion 2.0, January 2004\nhttp://www.apache.org/licenses/\n\nTERMS AND CONDITIONS\n"


def sniff(name: str, content: bytes | str, mime: str = "") -> str:
    handle = io.BytesIO(content.encode() if isinstance(content, str) else content)
    kind = kind_sniff(handle=handle, filename=name, mime=mime)
    assert handle.tell() == 0  # left where it was, for the upload to store from the start
    return kind


@pytest.mark.parametrize("name", [
    "LICENSE", "Apache-2.0", "CC0-1.0", "notes.v2", "README", "²", "é" * 150, "Makefile", ".env", "data.json",
    "archive.tar.gz.txt", "x" * 300,
])
def test_text_with_any_name_is_text(name):
    assert sniff(name, LICENSE) == "text"


def test_a_300_byte_utf8_name_and_non_ascii_text():
    name = "文" * 100  # 300 bytes of UTF-8, no extension
    assert len(name.encode()) == 300
    assert sniff(name, "Leuchtturm: Nebelhorn ertönt alle 30 Sekunden. 灯台の霧笛。²³ — “quoted”") == "text"


def test_utf8_cut_inside_a_character_at_the_sniff_boundary_is_still_text():
    content = ("a" * 8191 + "é" * 10).encode()  # byte 8192 is the middle of "é"
    assert sniff("LICENSE", content) == "text"


def test_utf16_with_a_bom_is_text():
    assert sniff("NOTICE", codecs.BOM_UTF16_LE + "Fog signal every 30 s.".encode("utf-16-le")) == "text"


@pytest.mark.parametrize(("name", "content", "mime", "kind"), [
    ("report", pdf_bytes(["Fog signals."]), "", "pdf"),
    ("report.v3", pdf_bytes(["Fog signals."]), "application/octet-stream", "pdf"),
    ("handbook", docx_bytes(["Fog signals."]), "", "docx"),
    ("handbook.2024", docx_bytes(["Fog signals."]), "application/octet-stream", "docx"),
    ("page", "<!DOCTYPE html><html><body><p>Fog</p></body></html>", "", "html"),
    ("page.v2", "\ufeff  <!-- saved --> <html lang=en><p>Fog</p></html>", "", "html"),
    ("README", "# Fog\n\nSignals.", "text/markdown", "markdown"),
    ("README", "# Fog\n\nSignals.", "", "text"),
    ("notes.md", "# Fog", "", "markdown"),
    ("legacy.txt", "Caf\xe9 au lait".encode("latin-1"), "", "text"),  # a .txt in Latin-1 is still read
])
def test_content_decides_the_type(name, content, mime, kind):
    assert sniff(name, content, mime) == kind


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("LICENSE", b"ab\x00cd" * 20, "NUL bytes"),
    ("Apache-2.0", bytes(range(256)) * 4, "binary data"),
    ("blob", b"\x01\x02\x03\x04\x05\x06\x07\x08" * 64, "binary data, not text"),
    ("notes.v2", b"Fog " + b"\xff\xfe\xfa" * 40, "nor UTF-8 text (if it is text, save it as UTF-8)"),
    ("photo", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(200), "is a PNG image"),
    ("old", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(200), "old Microsoft Office file"),
    ("archive.zip", zip_bomb_bytes(megabytes=1), "is a ZIP archive"),
    ("bundle", b"PK\x03\x04" + bytes(100), "is a ZIP archive"),
    ("image.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(200), "Unsupported file type"),
])
def test_binary_junk_is_refused_saying_what_it_is_and_what_is_accepted(name, content, reason):
    with pytest.raises(ExtractionError) as refused:
        sniff(name, content)
    assert reason in str(refused.value) and name in str(refused.value) and SUPPORTED in str(refused.value)


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("fake.pdf", "just text pretending", "named like a PDF file but its content is not one"),
    ("fake.docx", "just text pretending", "named like a DOCX file but its content is not one"),
    ("notes.txt", pdf_bytes(["Fog signals."]), "named like a text file, but its content is a PDF"),
    ("page.html", docx_bytes(["Fog"]), "named like an HTML file, but its content is a ZIP archive"),
    ("notes.md", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(200), "named like a Markdown file, but its content is a PNG"),
    ("notes.txt", b"ab\x00cd" * 20, "named like a text file, but its content is binary data"),
])
def test_content_that_contradicts_the_extension_is_refused(name, content, reason):
    with pytest.raises(ExtractionError, match=reason):
        sniff(name, content)


def test_an_empty_file_is_text_and_fails_later_for_having_no_text():
    assert sniff("LICENSE", b"") == "text"


def _pieces(tmp_path, kind: str, content: bytes) -> list[tuple[str, str]]:
    from knowledge.chunking import Heading
    from knowledge.extraction import Extraction

    path = tmp_path / "doc"
    path.write_bytes(content)
    return [("heading" if isinstance(piece, Heading) else "text", " ".join(piece.split()))
            for piece in Extraction(path=path, kind=kind, filename="doc") if piece.strip()]


def test_markdown_headings_are_their_own_pieces_but_not_inside_code(tmp_path):
    content = (b"# Fog signals ##\n\nSound the horn.\n\n```\n# a shell comment\n```\n\nLamp oil\n========\n\n"
               b"Fill it [weekly](http://x.example/).\n\n  ### Wicks\nTrim them.\n")

    assert _pieces(tmp_path, "markdown", content) == [
        ("heading", "Fog signals"), ("text", "Sound the horn. ``` # a shell comment ```"), ("heading", "Lamp oil"),
        ("text", "Fill it weekly."), ("heading", "Wicks"), ("text", "Trim them."),
    ]


def test_html_and_docx_headings_are_their_own_pieces(tmp_path):
    import io

    import docx

    html = b"<html><body><h1>Fog <b>signals</b></h1><p>Sound the horn.</p><h3>Lamp oil</h3>Fill it.</body></html>"
    assert _pieces(tmp_path, "html", html) == [
        ("heading", "Fog signals"), ("text", "Sound the horn."), ("heading", "Lamp oil"), ("text", "Fill it."),
    ]
    document = docx.Document()
    document.add_heading("Lighthouse manual", level=0)
    document.add_heading("Lamp oil", level=2)
    document.add_paragraph("Fill it weekly.")
    out = io.BytesIO()
    document.save(out)
    assert _pieces(tmp_path, "docx", out.getvalue()) == [
        ("heading", "Lighthouse manual"), ("heading", "Lamp oil"), ("text", "Fill it weekly."),
    ]
