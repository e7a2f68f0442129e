"""A Django test client signed in as a staff member whose session passed the second factor, as admin and
the staff dashboards require: for the bench commands, which have no one to type an authenticator code."""

from __future__ import annotations

from django.conf import settings
from django.test import Client


def staff_client(*, email: str) -> Client:
    from allauth.account.internal.flows.login import record_authentication
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
    from allauth.mfa.utils import is_mfa_enabled
    from django.test import RequestFactory

    from accounts.models import User

    host = next((h.lstrip(".") for h in settings.ALLOWED_HOSTS if h != "*"), "localhost")
    client = Client(HTTP_HOST=host)
    staff, _ = User.objects.get_or_create(email=email, defaults={"is_staff": True, "is_superuser": True})
    if not is_mfa_enabled(staff):
        TOTP.activate(staff, generate_totp_secret())
    client.force_login(staff)
    request = RequestFactory().get("/")
    request.session = client.session
    record_authentication(request, staff, "mfa", type="totp")
    request.session.save()
    return client
