"""Fixtures of the browser tests: contexts and pages on the session's Chromium (conftest.py's `chromium`),
each closed after the test."""

from __future__ import annotations

import pytest


@pytest.fixture
def browser_context(chromium):
    """`make(viewport, **options)`: a new browser context (its own cookies and storage)."""
    contexts = []

    def make(viewport, **options):
        context = chromium.new_context(viewport=viewport, **options)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def browser_page(browser_context):
    """`make(viewport)`: a page in a context of its own, waiting up to 20 s for what a test expects."""

    def make(viewport):
        page = browser_context(viewport).new_page()
        page.set_default_timeout(20_000)
        return page

    return make
