"""The long fuzz run against a live Parley: schemathesis over /api/schema/ and the page fuzzer
over every form and query parameter, as a throwaway owner. The test suite runs a short, fixed
version of both in-process (tests/test_fuzz.py)."""

from __future__ import annotations

import re

import requests
from django.core.management.base import BaseCommand, CommandError

from common.fuzz import HOSTILE_VALUES, api_fuzz, pages_fuzz

PAGES = ["/app/", "/app/assistants/", "/app/assistants/new/", "/app/chats/", "/app/keys/", "/app/usage/",
         "/app/knowledge/", "/app/knowledge/search/", "/billing/", "/billing/checkout/", "/billing/card/",
         "/accounts/email/", "/accounts/password/change/"]


class Command(BaseCommand):
    help = "Fuzz a running Parley (API and pages) and report every response of 500 or more."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", default="http://localhost:8000", help="The running Parley.")
        parser.add_argument("--examples", type=int, default=200, help="Examples per API operation and mode.")
        parser.add_argument("--seed", type=int, default=20261203)
        parser.add_argument("--email", default="fuzz@parley.localhost",
                            help="A throwaway user created (or reused) in this database.")
        parser.add_argument("--pages", nargs="*", default=PAGES, help="Pages to start from (their forms are found).")
        parser.add_argument("--skip-api", action="store_true")
        parser.add_argument("--skip-pages", action="store_true")

    def handle(self, *args: object, url: str, examples: int, seed: int, email: str, pages: list[str],
               skip_api: bool, skip_pages: bool, **options: object) -> None:
        import schemathesis
        from django.utils.crypto import get_random_string

        from accounts.models import User
        from accounts.services import apikey_create, user_create, user_email_verify

        base = url.rstrip("/")
        password = get_random_string(24)
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            user = user_create(email=email, password=password)
            user_email_verify(user=user)
        else:
            user.set_password(password)
            user.save()
        findings = []
        if not skip_api:
            _, key = apikey_create(user=user, name="fuzz", enforce_plan=False)
            schema = schemathesis.openapi.from_url(f"{base}/api/schema/")
            # Valid /v1 and knowledge requests really run models here; a 503 saying no model could
            # serve them is the stack's state (a worker down or loading), listed apart.
            report = api_fuzz(schema=schema, headers={"Authorization": f"Bearer {key}"}, examples=examples,
                              seed_value=seed, allow_unavailable=True)
            self.stdout.write(f"API: {report.requests} requests, statuses {sorted(report.statuses.items())}")
            for unavailable in report.unavailable:
                self.stdout.write(self.style.WARNING(f"no model could serve: {unavailable}"))
            findings += report.findings
        if not skip_pages:
            session = _signed_in(base, email, password)

            def get(path: str, params: dict[str, str]) -> tuple[int, str]:
                response = session.get(base + path, params=params, allow_redirects=False, timeout=60)
                return response.status_code, response.text

            def post(path: str, data: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[int, str]:
                data = {**data, "csrfmiddlewaretoken": session.cookies.get("csrftoken", "")}
                response = session.post(base + path, data=data, files=files or None, allow_redirects=False,
                                        headers={"Referer": base + path}, timeout=60)
                return response.status_code, response.text

            report = pages_fuzz(get=get, post=post, pages=pages, values=HOSTILE_VALUES)
            self.stdout.write(f"Pages: {report.requests} requests, statuses {sorted(report.statuses.items())}")
            findings += report.findings
        for finding in findings:
            self.stdout.write(self.style.ERROR(str(finding)))
        if findings:
            raise CommandError(f"{len(findings)} response(s) of 500 or more.")
        self.stdout.write(self.style.SUCCESS("0 responses of 500 or more."))


def _signed_in(base: str, email: str, password: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    response = session.post(f"{base}/accounts/login/", data={
        "csrfmiddlewaretoken": token.group(1) if token else "", "login": email, "password": password,
    }, headers={"Referer": f"{base}/accounts/login/"}, allow_redirects=False, timeout=30)
    if response.status_code != 302:
        raise CommandError(f"Could not sign in as {email} at {base} (HTTP {response.status_code}).")
    return session
