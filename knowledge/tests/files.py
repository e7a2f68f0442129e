"""Test documents: real PDFs and DOCX (from knowledge.samples), a zip bomb (zipfile), uploads."""

from __future__ import annotations

import io
import zipfile

from django.core.files.uploadedfile import SimpleUploadedFile

from knowledge.samples import docx_bytes, pdf_bytes

__all__ = ["docx_bytes", "pdf_bytes", "upload", "zip_bomb_bytes"]


def zip_bomb_bytes(*, megabytes: int) -> bytes:
    """A ZIP named like a DOCX whose document.xml inflates to `megabytes` of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            block = b"\0" * (1024 * 1024)
            for _ in range(megabytes):
                member.write(block)
    return out.getvalue()


def upload(name: str, content: bytes | str, content_type: str = "") -> SimpleUploadedFile:
    data = content.encode() if isinstance(content, str) else content
    return SimpleUploadedFile(name, data, content_type=content_type or "application/octet-stream")
