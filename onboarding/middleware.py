"""Requests and server errors per hour, counted in Redis for the error-rate alert.

Two INCRs in one pipeline per request (`parley:analytics:requests:<YYYYmmddHH>` and
`parley:analytics:requests:5xx:<YYYYmmddHH>`, UTC, kept two days); the hourly alert task copies the
finished hour into `TrafficHour` (onboarding/services/alerts.py). Counting must never cost a
request: when Redis is down the count is skipped, and for a short while after a failure no
process tries again, so a dead Redis doesn't add its connect timeout to every request.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC

from django.utils import timezone

from common.redis_connection import redis_client

logger = logging.getLogger(__name__)

REQUESTS_PREFIX = "parley:analytics:requests:"
ERRORS_PREFIX = "parley:analytics:requests:5xx:"
KEY_TTL_SECONDS = 2 * 86400
# Probes and static files say nothing about what users meet, and would dilute the error share.
NOT_COUNTED = ("/static/", "/media/", "/healthz", "/readyz", "/metrics", "/favicon.ico")
RETRY_AFTER_FAILURE_SECONDS = 30.0


def hour_key(prefix: str, at) -> str:
    return prefix + at.astimezone(UTC).strftime("%Y%m%d%H")


class RequestCountMiddleware:
    _skip_until = 0.0  # per process: Redis failed recently

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith(NOT_COUNTED):
            self._count(server_error=response.status_code >= 500)
        return response

    def _count(self, *, server_error: bool) -> None:
        if time.monotonic() < RequestCountMiddleware._skip_until:
            return
        now = timezone.now()
        try:
            pipe = redis_client().pipeline(transaction=False)
            key = hour_key(REQUESTS_PREFIX, now)
            pipe.incr(key)
            pipe.expire(key, KEY_TTL_SECONDS)
            if server_error:
                errors = hour_key(ERRORS_PREFIX, now)
                pipe.incr(errors)
                pipe.expire(errors, KEY_TTL_SECONDS)
            pipe.execute()
        except Exception:  # a lost count must never fail the request it counts
            RequestCountMiddleware._skip_until = time.monotonic() + RETRY_AFTER_FAILURE_SECONDS
            logger.warning("analytics: could not count the request in Redis; counting paused for %.0f s",
                           RETRY_AFTER_FAILURE_SECONDS, exc_info=True)
