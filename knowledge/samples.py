"""Real PDF and DOCX files built on the spot (pypdf, python-docx): test fixtures and the benchmark corpus."""

from __future__ import annotations

import io
import textwrap


def pdf_bytes(pages: list[str], *, password: str | None = None) -> bytes:
    """A PDF whose pages carry `pages` as real text (Helvetica), optionally encrypted."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
    }))
    for text in pages:
        page = writer.add_blank_page(612, 792)
        lines = [line for paragraph in text.split("\n\n") for line in [*textwrap.wrap(paragraph, 90), ""]]
        escaped = [line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for line in lines]
        ops = "BT /F1 10 Tf 40 760 Td 12 TL " + " ".join(f"({line}) Tj T*" for line in escaped) + " ET"
        stream = DecodedStreamObject()
        stream.set_data(ops.encode("latin-1", "replace"))
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject({
            NameObject("/F1"): font})})
        page[NameObject("/Contents")] = writer._add_object(stream)
    if password:
        writer.encrypt(user_password=password, owner_password=password, algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
