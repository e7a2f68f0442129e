"""The staff analytics dashboard and its API."""

from __future__ import annotations

urlpatterns: list = []
