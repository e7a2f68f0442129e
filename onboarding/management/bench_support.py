"""What the onboarding benches share: their own database on the embedded PostgreSQL, and a Django test
client signed in as staff whose session passed the second factor (admin and the staff dashboards require
it; a bench has no one to type an authenticator code)."""

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


def embedded_bench_database(name: str) -> str:
    """The URL of database `name` on the embedded PostgreSQL, created if missing: a bench's own database."""
    from django.core.management.base import CommandError

    from config import services

    info = services.postgres_info()
    if info is None:
        raise CommandError("The embedded PostgreSQL is not running (`make run` or `make test` starts it); "
                           "pass --database-url.")
    import psycopg

    with psycopg.connect(info.url("postgres"), autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')
    return info.url(name)
