"""Crash points for fault tests: a process told to die at a named point is SIGKILLed there.

Only against the local Stripe stand-in; with real Stripe the variable is ignored.
"""

from __future__ import annotations

import os
import signal

from django.conf import settings

ENV_VAR = "PARLEY_BILLING_CRASH_AT"


def crash_point(name: str) -> None:
    if settings.BILLING_MODE == "local" and os.environ.get(ENV_VAR) == name:
        os.kill(os.getpid(), signal.SIGKILL)
