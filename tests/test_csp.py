"""Content Security Policy: on every page, with no inline script anywhere to need an exception."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from accounts.tests.factories import user_make
from chat.tests.factories import conversation_make

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE)
HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)


def _directives(header: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


@pytest.mark.parametrize("template", sorted(str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*.html")))
def test_no_template_has_an_inline_script_or_handler(template):
    source = (TEMPLATES / template).read_text()

    assert not INLINE_SCRIPT.search(source), f"{template} has an inline <script>; move it into static/js/"
    assert not HANDLER.search(source), f"{template} has an inline event handler; use addEventListener"
    assert "javascript:" not in source


ANONYMOUS_PAGES = ["/", "/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]
PAGES = ["/app/", "/app/assistants/", "/app/chats/", "/app/keys/",
         "/app/usage/", "/app/knowledge/", "/app/knowledge/search/", "/billing/", "/api/docs/"]


@pytest.fixture
def signed_in(client, bundled_models):
    user = user_make()
    client.force_login(user)
    return user


def test_every_page_has_the_policy_and_no_inline_script(client, bundled_models):
    user = user_make()
    conversation = conversation_make(user=user)
    for path in [*ANONYMOUS_PAGES, "signed in", *PAGES, f"/app/chats/{conversation.pk}/"]:
        if path == "signed in":
            client.force_login(user)
            continue
        response = client.get(path)

        assert response.status_code == 200, path
        policy = _directives(response["Content-Security-Policy"])
        assert policy["script-src"] == ["'self'"], path
        assert policy["img-src"] == ["'self'", "data:"], path
        assert policy["connect-src"] == ["'self'"] and policy["form-action"] == ["'self'"], path
        assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"], path
        assert not INLINE_SCRIPT.search(response.content.decode()), path


def test_the_swagger_ui_start_up_script_is_a_file(client, signed_in):
    response = client.get("/api/docs/?script=")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in response.content.decode()


def test_stripe_is_allowed_only_in_stripe_mode(client, signed_in, settings):
    local = _directives(client.get("/billing/")["Content-Security-Policy"])
    settings.BILLING_MODE = "test"
    stripe = _directives(client.get("/billing/")["Content-Security-Policy"])

    assert not any("stripe" in source for sources in local.values() for source in sources)
    assert stripe["script-src"] == ["'self'", "https://js.stripe.com"]
    assert "https://js.stripe.com" in stripe["frame-src"] and "https://api.stripe.com" in stripe["connect-src"]
    assert stripe["img-src"] == ["'self'", "data:"]
