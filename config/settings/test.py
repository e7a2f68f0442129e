"""pytest: the same embedded services, their own database and Redis db number."""

from __future__ import annotations

import os

from config import services

from .base import *  # noqa: F403
from .base import REDIS_URL, _channel_host, env

DEBUG = False
SECRET_KEY = "test-only-key-not-secret-0123456789abcdefghijklmnopqrstuvwxyz"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user creation
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Tests use Redis db 1 so a running `make run` (db 0) and the test suite don't see each
# other's queues, and the suite can flush its own db freely.
if not env("REDIS_URL", default="") or env.bool("PARLEY_TEST_SEPARATE_REDIS_DB", default=False):
    REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + "/" + str(env.int("PARLEY_TEST_REDIS_DB", default=1))
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [_channel_host(REDIS_URL)], "prefix": "parley:test:channels", "capacity": 2000},
    }
}
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
ACCOUNT_RATE_LIMITS = False

# --- Billing: tests always use localstripe, on a free loopback port picked once per run (the
# variable is inherited by the workers and servers tests start; billing/tests/conftest.py starts it).
if not os.environ.get("PARLEY_TEST_STRIPE_API_BASE"):
    os.environ["PARLEY_TEST_STRIPE_API_BASE"] = f"http://127.0.0.1:{services._free_port()}"
BILLING_MODE = "local"
STRIPE_API_BASE = os.environ["PARLEY_TEST_STRIPE_API_BASE"]
STRIPE_SECRET_KEY = STRIPE_TEST_SECRET_KEY = "sk_test_localstripe0000000000000000"
STRIPE_PUBLISHABLE_KEY = "pk_test_localstripe0000000000000000"
STRIPE_LIVE_MODE = False
STRIPE_LIVE_SECRET_KEY = ""
BILLING_CLOCK_ADJUSTABLE = True
