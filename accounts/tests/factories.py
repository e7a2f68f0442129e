from __future__ import annotations

import itertools

from accounts.models import User
from accounts.services import user_create, user_email_verify

_counter = itertools.count(1)
PASSWORD = "correct horse battery staple 42"


def user_make(*, email: str | None = None, verified: bool = True, **extra: object) -> User:
    user = user_create(email=email or f"user{next(_counter)}@example.com", password=PASSWORD, **extra)
    if verified:
        user_email_verify(user=user)
    return user
