"""Consent, the privacy page and the browser's event endpoint."""

from __future__ import annotations

urlpatterns: list = []
