"""Benchmark the staff onboarding funnel page at 100k users.

    python manage.py bench_onboarding [--users 100000] [--repeat 7] [--database-url URL]

It runs against its own database (`parley_bench_onboarding` on the embedded PostgreSQL, or
--database-url), so neither your data nor a running `make run` is touched. The first run creates the
users, their journeys (sign-ups spread over 12 weeks; about 80% verified, 60% start the tour, each
step reached by fewer, 25% finish, 55% have a first chat) and their step progress, in SQL; later runs
reuse them. Then it fetches the admin funnel page through Django's test client as a staff member who
passed the second factor, and reports, as a table and one JSON line:

- the page over all sign-ups (the default 12 weeks), its CSV download, and the funnel's SQL alone;
- baselines in the same run: the admin index page (what any admin page costs), and the funnel page
  for a single day of sign-ups (about 1/84 of the users), so "page ÷ one day" says how it scales.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from onboarding.management.bench_support import embedded_bench_database, staff_client

BASE_DIR = Path(__file__).resolve().parents[3]
BENCH_DB = "parley_bench_onboarding"
BENCH_DOMAIN = "@bench-onboarding.parley.invalid"
WEEKS = 12


class Command(BaseCommand):
    help = "Benchmark the onboarding funnel admin page at N users (its own database)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--users", type=int, default=100_000)
        parser.add_argument("--repeat", type=int, default=7, help="Timed fetches of each page (after one warm-up).")
        parser.add_argument("--database-url", default="", help="Default: database parley_bench_onboarding on the "
                                                               "embedded server.")
        parser.add_argument("--phase", choices=["measure"], default="", help="internal")

    def handle(self, *args, **options) -> None:
        if options["users"] < 100 or options["repeat"] < 1:
            raise CommandError("--users must be at least 100 and --repeat at least 1.")
        if options["phase"] == "measure":
            return self._measure(options["users"], options["repeat"])
        url = options["database_url"] or embedded_bench_database(BENCH_DB)
        env = dict(os.environ, DATABASE_URL=url, PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING",
                   DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.dev"))
        manage = [sys.executable, "manage.py"]
        self.stdout.write(f"bench: migrating {url.split('?')[0]}")
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
        result = subprocess.run([*manage, "bench_onboarding", "--phase", "measure", "--users", str(options["users"]),
                                 "--repeat", str(options["repeat"])], cwd=BASE_DIR, env=env)
        if result.returncode:
            raise CommandError("the measurement failed; see above")

    # ------------------------------------------------------------------ in the bench database

    def _measure(self, users: int, repeat: int) -> None:
        from datetime import timedelta

        from django.utils import timezone

        from onboarding.seed import onboarding_seed
        from onboarding.selectors import funnel_compute

        on_bench_database = BENCH_DB in str(settings.DATABASES["default"]["NAME"])
        if not on_bench_database and not os.environ.get("PARLEY_BENCH_ANY_DATABASE"):
            raise CommandError("The measure phase writes users; it runs only against the bench database.")
        onboarding_seed()
        started = time.monotonic()
        created = self._populate(users)
        setup_seconds = time.monotonic() - started
        if created:
            self.stdout.write(f"bench: created {users:,} users with journeys in {setup_seconds:.1f} s")

        client = staff_client(email=f"staff{BENCH_DOMAIN}")
        today = timezone.localdate()
        all_weeks = f"/admin/onboarding/journey/funnel/?since={today - timedelta(weeks=WEEKS)}&until={today}"
        week_ago = today - timedelta(days=7)
        one_day = f"/admin/onboarding/journey/funnel/?since={week_ago}&until={week_ago}"

        def timed(path: str) -> list[float]:
            response = client.get(path)  # warm-up: templates, query plans, the connection
            if response.status_code != 200:
                raise CommandError(f"GET {path} answered {response.status_code}")
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                response = client.get(path)
                _ = response.content
                times.append((time.perf_counter() - start) * 1000)
            return times

        now = timezone.now()
        since = now - timedelta(weeks=WEEKS + 1)
        funnel = funnel_compute(since=since, until=now, window_days=settings.PARLEY_ONBOARDING_FUNNEL_WINDOW_DAYS)
        sql_times = []
        for _ in range(repeat):
            start = time.perf_counter()
            funnel_compute(since=since, until=now, window_days=settings.PARLEY_ONBOARDING_FUNNEL_WINDOW_DAYS)
            sql_times.append((time.perf_counter() - start) * 1000)
        page, csv_download = timed(all_weeks), timed(all_weeks + "&format=csv")
        index, day_page = timed("/admin/"), timed(one_day)

        def p50(values: list[float]) -> float:
            return round(statistics.median(values), 1)

        def worst(values: list[float]) -> float:
            return round(max(values), 1)

        result = {
            "users": users, "signups_in_page": funnel.stages[0].users, "repeat": repeat,
            "page_p50_ms": p50(page), "page_max_ms": worst(page),
            "csv_p50_ms": p50(csv_download), "funnel_sql_p50_ms": p50(sql_times),
            "admin_index_p50_ms": p50(index), "one_day_page_p50_ms": p50(day_page),
            "page_over_one_day": round(statistics.median(page) / statistics.median(day_page), 2),
            "page_minus_admin_index_ms": round(statistics.median(page) - statistics.median(index), 1),
            "setup_seconds": round(setup_seconds, 1) if created else 0,
        }
        rows = [
            ("users", f"{users:,}"), ("sign-ups on the page", f"{result['signups_in_page']:,}"),
            ("funnel page p50 / max (ms)", f"{result['page_p50_ms']} / {result['page_max_ms']}"),
            ("CSV download p50 (ms)", result["csv_p50_ms"]), ("funnel SQL alone p50 (ms)", result["funnel_sql_p50_ms"]),
            ("baseline: admin index p50 (ms)", result["admin_index_p50_ms"]),
            ("baseline: one day's sign-ups p50 (ms)", result["one_day_page_p50_ms"]),
            ("page ÷ one day", result["page_over_one_day"]),
            ("page − admin index (ms)", result["page_minus_admin_index_ms"]),
        ]
        width = max(len(label) for label, _ in rows)
        for label, value in rows:
            self.stdout.write(f"{label:<{width}}  {value}")
        self.stdout.write(json.dumps(result, sort_keys=True))

    def _populate(self, users: int) -> bool:
        """N bench users with journeys and step progress, made in SQL (a few seconds per 100k). False if
        they are there already."""
        from django.db import connection, transaction

        from accounts.models import User

        existing = User.objects.filter(email__endswith=BENCH_DOMAIN, email__startswith="u").count()
        if existing == users:
            return False
        with transaction.atomic(), connection.cursor() as cursor:
            User.objects.filter(email__endswith=BENCH_DOMAIN, email__startswith="u").delete()
            cursor.execute("SELECT setseed(0.42)")
            # Sign-ups spread over the last 12 weeks; an unusable password ('!').
            cursor.execute(f"""
                INSERT INTO accounts_user (password, is_superuser, email, is_staff, is_active, date_joined, name,
                                           avatar, avatar_kind, time_zone, email_digest)
                SELECT '!', false, 'u' || n || '{BENCH_DOMAIN}', false, true,
                       now() - random() * interval '{WEEKS} weeks', '', '', '', '', ''
                FROM generate_series(1, %s) AS n""", [users])
            cursor.execute(f"""
                INSERT INTO onboarding_journey (user_id, signed_up_at, verified_at, first_chat_at, tour_state,
                    completed_steps, run, tour_started_at, tour_finished_at, run_started_at, run_finished_at,
                    updated_at)
                SELECT id, date_joined,
                       CASE WHEN r < 0.8 THEN date_joined + random() * interval '2 hours' END,
                       CASE WHEN r2 < 0.55 THEN date_joined + random() * interval '3 days' END,
                       CASE WHEN r < 0.25 THEN 'finished' WHEN r < 0.6 THEN 'active' ELSE 'new' END,
                       '[]'::jsonb, CASE WHEN r < 0.6 THEN 1 ELSE 0 END,
                       CASE WHEN r < 0.6 THEN date_joined + interval '2 hours' + random() * interval '1 day' END,
                       CASE WHEN r < 0.25 THEN date_joined + interval '2 days' + random() * interval '5 days' END,
                       CASE WHEN r < 0.6 THEN date_joined + interval '2 hours' END,
                       CASE WHEN r < 0.25 THEN date_joined + interval '2 days' END,
                       now()
                FROM (SELECT id, date_joined, random() AS r, random() AS r2 FROM accounts_user
                      WHERE email LIKE 'u%%{BENCH_DOMAIN}') AS u""")
            # Each tour starter reaches steps in order and stops after a random one (finishers reach all).
            cursor.execute("""
                INSERT INTO onboarding_stepprogress (user_id, step_id, reached_at, completed_at)
                SELECT j.user_id, s.id, j.tour_started_at + s."order" * interval '10 minutes',
                       j.tour_started_at + s."order" * interval '10 minutes' + interval '3 minutes'
                FROM onboarding_journey j
                CROSS JOIN LATERAL (SELECT CASE WHEN j.tour_finished_at IS NOT NULL THEN 99
                                                ELSE 1 + floor(random() * 7)::int END AS last) AS l
                JOIN onboarding_tourstep s ON s.enabled AND s."order" <= l.last
                WHERE j.tour_started_at IS NOT NULL AND j.user_id IN (
                    SELECT id FROM accounts_user WHERE email LIKE %s)""", [f"u%{BENCH_DOMAIN}"])
            cursor.execute("ANALYZE accounts_user, onboarding_journey, onboarding_stepprogress")
        return True
