from __future__ import annotations

import itertools
import re
import time
from pathlib import Path

from django.test import RequestFactory

from accounts.models import User
from accounts.services import user_create, user_email_verify

_counter = itertools.count(1)
PASSWORD = "correct horse battery staple 42"


def user_make(*, email: str | None = None, verified: bool = True, **extra: object) -> User:
    user = user_create(email=email or f"user{next(_counter)}@example.com", password=PASSWORD, **extra)
    if verified:
        user_email_verify(user=user)
    return user


def totp_secret_for(user: User) -> str:
    """Give the user an authenticator app (TOTP) and return its secret, as if they scanned the QR code."""
    from allauth.mfa.models import Authenticator
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
    from allauth.mfa.utils import decrypt

    existing = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
    if existing is not None:
        return decrypt(existing.data["secret"])
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def totp_code(secret: str) -> str:
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def staff_login(client, user: User) -> None:
    """Sign a staff member in the way admin requires: with an authenticator code in this session
    (what allauth records after the code step; tests of that step itself go through the forms)."""
    from allauth.account.internal.flows.login import record_authentication

    totp_secret_for(user)
    client.force_login(user)
    request = RequestFactory().get("/")
    request.session = client.session
    record_authentication(request, user, "mfa", type="totp")
    request.session.save()


CONFIRM_LINK = re.compile(r"http://127\.0\.0\.1:\d+/accounts/confirm-email/[^\s]+/")


def confirmation_link(log: Path, email: str) -> str:
    """The verification link the console email backend of a live Daphne printed for `email`."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = log.read_text()
        start = text.rfind(f"To: {email}")
        if start != -1 and (match := CONFIRM_LINK.search(text, start)):
            return match.group(0)
        time.sleep(0.1)
    raise AssertionError(f"no confirmation email for {email} in the server output")
