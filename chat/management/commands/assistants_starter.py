"""Create the seeded assistants' starter collections and queue their ingest (idempotent; `make run` runs it)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from chat.seed import STARTER_COLLECTIONS
from chat.starter import assistants_starter_install, starter_owner_default
from common.errors import ApplicationError


class Command(BaseCommand):
    help = ("Create the legal, HR and IT assistants' starter collections (knowledge/starter/), readable by "
            "everyone, and ingest their documents. A second run adds only what changed.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--owner", default="", help="Email of the staff user who owns them (default: the "
                                                        "first superuser).")
        parser.add_argument("--only", action="append", choices=list(STARTER_COLLECTIONS),
                            help="Only this assistant's collection (repeatable).")
        parser.add_argument("--now", action="store_true",
                            help="Ingest here and now instead of queueing for the workers.")

    def handle(self, *args: object, owner: str, only: list[str] | None, now: bool, **options: object) -> None:
        try:
            user = User.objects.get(email__iexact=owner) if owner else starter_owner_default()
            outcomes = assistants_starter_install(owner=user, only=only, ingest_now=now)
        except User.DoesNotExist:
            raise CommandError(f"No user {owner}.")
        except ApplicationError as exc:
            raise CommandError(exc.message)
        for outcome in outcomes:
            if outcome.documents_retired:
                plural = "" if outcome.documents_retired == 1 else "s"
                self.stdout.write(f"starter: {outcome.assistant}: removed {outcome.documents_retired} sample "
                                  f"document{plural} an earlier release shipped (unchanged since)")
            if outcome.documents_added or outcome.collection_created:
                state = "ingested" if now else "queued for ingest"
                plural = "" if outcome.documents_added == 1 else "s"
                self.stdout.write(f"starter: {outcome.assistant}: collection {outcome.collection_id}"
                                  f"{' (new)' if outcome.collection_created else ''}, "
                                  f"{outcome.documents_added} document{plural} {state}")
