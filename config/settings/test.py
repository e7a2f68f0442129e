"""pytest: the same embedded services, their own database and Redis db number."""

from __future__ import annotations

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
    REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + "/1"
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
