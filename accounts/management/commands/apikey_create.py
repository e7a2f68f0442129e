from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import apikey_create


class Command(BaseCommand):
    help = "Create an API key for a user and print it once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--name", default="CLI key")

    def handle(self, *args: object, email: str, name: str, **options: object) -> None:
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            raise CommandError(f"No user with email {email}. Sign up first or create one in /admin/.")
        api_key, key = apikey_create(user=user, name=name, enforce_plan=False)
        self.stderr.write(f"Created API key {api_key.prefix}… ({api_key.name}) for {user.email}; it is shown once:")
        self.stdout.write(key)
