"""Production: every secret comes from the environment, and start-up fails loudly without it."""

from __future__ import annotations

import environ
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env

_REQUIRED = ("SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL")
_missing = [name for name in _REQUIRED if not env(name, default="")]
if _missing:
    raise ImproperlyConfigured(
        f"Production settings need {', '.join(_missing)} in the environment "
        "(see .env.example for what each one means)."
    )

if env.list("PARLEY_WEBHOOK_ALLOWED_URLS", default=[]) and not env("PARLEY_WEBHOOK_SECRET", default=""):
    raise ImproperlyConfigured("PARLEY_WEBHOOK_ALLOWED_URLS is set but PARLEY_WEBHOOK_SECRET is not: receivers "
                               "could not tell Parley's webhooks from forged ones. Set a long random secret.")

DEBUG = False
SECRET_KEY = env("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# Probes and Prometheus reach Daphne over plain HTTP inside the network (Daphne's port is never
# published). Anonymous /readyz says only ok or not, and /metrics needs PARLEY_METRICS_TOKEN or staff.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

_email = environ.Env.email_url_config(env("EMAIL_URL", default="") or "smtp://localhost:25")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email["EMAIL_HOST"]
EMAIL_PORT = _email["EMAIL_PORT"]
EMAIL_HOST_USER = _email["EMAIL_HOST_USER"]
EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"]
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)

STATIC_ROOT = env("STATIC_ROOT", default="") or BASE_DIR / "var" / "static"  # noqa: F405

# --- Billing: a production clock is never movable, whatever the environment says. ---
BILLING_CLOCK_ADJUSTABLE = False
