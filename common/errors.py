from __future__ import annotations


class ApplicationError(Exception):
    """A rule of the domain was broken; `message` is safe to show to the user as it is."""

    def __init__(self, message: str, *, code: str = "invalid", status: int = 400, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.extra = extra or {}
