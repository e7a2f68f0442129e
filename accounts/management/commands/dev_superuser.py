from __future__ import annotations

from django.core.management.base import BaseCommand
from django.utils.crypto import get_random_string

from accounts.models import User
from accounts.services import user_create, user_email_verify


class Command(BaseCommand):
    help = "Create a local superuser if none exists and print its credentials once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--email", default="admin@parley.localhost")

    def handle(self, *args: object, email: str, **options: object) -> None:
        if User.objects.filter(is_superuser=True).exists():
            return
        password = get_random_string(20)
        user = user_create(email=email, password=password, is_staff=True, is_superuser=True)
        # allauth requires a verified address before log-in; this one is the operator's own.
        user_email_verify(user=user)
        self.stdout.write(self.style.SUCCESS(
            "Created a superuser for this machine (shown once, not stored anywhere else):\n"
            f"  email:    {email}\n  password: {password}\n  admin:    http://localhost:8000/admin/\n"
            "Admin needs a second factor: open the admin link, sign in, confirm the password once more,\n"
            "scan the QR code with an authenticator app (or paste the secret into one), enter its code, and\n"
            "keep the recovery codes it shows. After that, admin asks for a code at each sign-in."
        ))
