"""Text from users before it reaches PostgreSQL or the disk: no control characters, names that fit."""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath

from django.core.exceptions import ValidationError

# C0 and C1 control characters, DEL and NUL, but not tab and newlines (multi-line fields keep
# those). PostgreSQL refuses NUL in text outright; the others are never typed by a person and
# break log lines, headers and file names.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
FILENAME_MAX_BYTES = 255  # one path component on Linux file systems


def control_character_find(value: str) -> str | None:
    match = _CONTROL.search(value)
    return match.group(0) if match else None


def control_characters_refuse(value: str) -> None:
    """A form and serializer validator: say which character is wrong, and what to do."""
    if isinstance(value, str) and (char := control_character_find(value)) is not None:
        name = "NUL" if char == "\x00" else f"U+{ord(char):04X}"
        raise ValidationError(f"This contains a control character ({name}); remove it and try again.",
                              code="control_character")


def _cut_bytes(text: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8, never splitting a character."""
    return text.encode()[:max(limit, 0)].decode(errors="ignore")


def filename_clean(name: str, *, max_bytes: int = FILENAME_MAX_BYTES, default: str = "document") -> str:
    """A file name safe to store: no directories or control characters, at most `max_bytes` bytes
    of UTF-8, the extension kept (`résumé…long.pdf` stays a .pdf)."""
    name = unicodedata.normalize("NFC", name or "").replace("\\", "/")
    name = _CONTROL.sub("", PurePosixPath(name).name).strip().strip(".")
    if not name:
        return default
    path = PurePosixPath(name)
    suffix = path.suffix if 1 < len(path.suffix.encode()) <= 16 else ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    cut = _cut_bytes(stem, max_bytes - len(suffix.encode())).rstrip()
    return (cut or default) + suffix
