"""Pages still work under the Content Security Policy: nothing of ours is blocked."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import user_make
from tests.browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_swagger_ui_and_the_app_pages_run_with_no_policy_violation(page, live_daphne):
    violations = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    user_make(email="csp@example.com")
    url = live_daphne["url"]
    sign_in(page, url, "csp@example.com")

    page.goto(url + "/api/docs/")
    expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)  # Swagger UI rendered the schema
    for path in ("/app/chats/", "/app/knowledge/", "/billing/", "/app/keys/"):
        page.goto(url + path)
        page.wait_for_load_state("networkidle")

    assert violations == []
