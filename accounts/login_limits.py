"""Failed log-ins, counted per account *and* client address, with a doubling wait.

allauth's own per-account limit (5 failures in 5 minutes, keyed by the email alone) let anyone
keep a victim locked out from anywhere with 5 bad passwords every 5 minutes. Here failures count
against the pair (account, client IP): a stranger only locks themselves out. Repeated failures
from one place back off: after FREE_FAILURES, each further failure makes that pair wait twice as
long, from a minute up to an hour. A success clears the pair. The per-IP limit across accounts
stays allauth's (10 a minute), which behind a proxy needs PARLEY_TRUSTED_PROXIES to see clients.
"""

from __future__ import annotations

import hashlib
import time

from django.core.cache import cache

FREE_FAILURES = 5
FIRST_WAIT_SECONDS = 60
MAX_WAIT_SECONDS = 3600
FORGET_AFTER_SECONDS = 24 * 3600


def _key(*, email: str, ip: str) -> str:
    digest = hashlib.sha256(f"{email.strip().lower()}|{ip}".encode()).hexdigest()
    return f"parley:login-failures:{digest}"


def login_wait_seconds(*, email: str, ip: str) -> int:
    """Seconds this client must wait before trying this account again (0: go ahead)."""
    state = cache.get(_key(email=email, ip=ip)) or {}
    return max(0, int(state.get("until", 0) - time.time() + 0.999))


def login_failure_record(*, email: str, ip: str) -> int:
    """Count a failure; returns the wait it now imposes, in seconds."""
    key = _key(email=email, ip=ip)
    state = cache.get(key) or {"failures": 0, "until": 0}
    state["failures"] += 1
    over = state["failures"] - FREE_FAILURES
    wait = 0 if over < 0 else min(FIRST_WAIT_SECONDS * 2 ** over, MAX_WAIT_SECONDS)
    state["until"] = time.time() + wait
    cache.set(key, state, FORGET_AFTER_SECONDS)
    return wait


def login_failures_clear(*, email: str, ip: str) -> None:
    cache.delete(_key(email=email, ip=ip))
