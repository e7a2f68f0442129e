"""Content Security Policy on every response.

Django 5.2 has no CSP support (it arrives in Django 6.0, which needs Python 3.12), so this is a
small middleware rather than the django-csp package: the policy is one static dict plus Stripe's
hosts in Stripe mode, and the setting has the shape of Django 6.0's `SECURE_CSP` (directive ->
list of sources) so moving to `django.middleware.csp.ContentSecurityPolicyMiddleware` later is a
settings change. No nonces: no template has an inline script or event handler (a test walks
them all), so `script-src 'self'` holds everywhere.

Why it matters: chat replies are model output rendered as HTML, and a prompt-injected document
can make a model write markup. DOMPurify (static/js/chat.js) removes forms, inputs and remote
images; this policy is the second wall: no script but our own files, images only from this site
or `data:`, and fetches and forms only to this site, so nothing on the page can carry the
conversation to another server.
"""

from __future__ import annotations

from django.conf import settings

STRIPE_SOURCES = {
    "script-src": ["https://js.stripe.com"],
    "frame-src": ["https://js.stripe.com", "https://hooks.stripe.com"],
    "connect-src": ["https://api.stripe.com"],
}


def csp_policy() -> dict[str, list[str]]:
    policy = {directive: list(sources) for directive, sources in settings.SECURE_CSP.items()}
    if settings.BILLING_MODE != "local":  # Stripe.js and its frames, only where real Stripe is used
        for directive, sources in STRIPE_SOURCES.items():
            policy.setdefault(directive, ["'self'"]).extend(sources)
    return policy


def csp_header(policy: dict[str, list[str]]) -> str:
    return "; ".join(f"{directive} {' '.join(sources)}".strip() for directive, sources in policy.items())


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", csp_header(csp_policy()))
        return response
