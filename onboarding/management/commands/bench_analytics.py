"""Benchmark product analytics: ingest through the browser endpoint, and the staff queries at 1M and 10M events.

    python manage.py bench_analytics [--events 1000000,10000000] [--repeat 10] [--ingest-seconds 15]
                                     [--clients 4] [--database-url URL]

It runs against its own database (`parley_bench_analytics` on the embedded PostgreSQL, or
--database-url) and Redis database 3, so neither your data nor a running `make run` is touched.

1. **Ingest.** Starts Daphne on a free loopback port and posts batches of 50 events, as the browser's
   tracker does, to `POST /api/analytics/events` from `--clients` keep-alive connections for
   `--ingest-seconds`, each request from a different visitor (user agent) with the consent cookie.
   Baseline in the same run, same connections: `GET /healthz` (what any request costs on this
   stack). The rate limiter stays on, raised so it never refuses: it still runs per request.
2. **Queries.** Fills the events table in SQL (90 days, time-ordered as real arrivals are, about half
   signed in among 20,000 users) up to each size in --events, and times every dashboard query
   (the selectors the staff page and the API call) --repeat times after a warm-up: p50 and p95.

Everything is printed as a table and as one JSON line.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from common.bench import as_json, median, percentile, table
from onboarding.management.bench_support import embedded_bench_database, staff_client

BASE_DIR = Path(__file__).resolve().parents[3]
BENCH_DB = "parley_bench_analytics"
BENCH_DOMAIN = "@bench-analytics.parley.invalid"
BENCH_USERS = 20_000
DAYS = 90
BATCH = 50
QUERY_TARGET_MS = 300  # p95 at 1M events (issue 17)
INGEST_TARGET = 2000  # events/s


class Command(BaseCommand):
    help = "Benchmark analytics ingest and the staff dashboard queries (its own database)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--events", default="1000000,10000000",
                            help="Comma-separated table sizes to time the queries at (ascending).")
        parser.add_argument("--repeat", type=int, default=10, help="Timed runs of each query (after a warm-up).")
        parser.add_argument("--ingest-seconds", type=float, default=15.0)
        parser.add_argument("--clients", type=int, default=4, help="Concurrent connections posting events.")
        parser.add_argument("--database-url", default="", help="Default: database parley_bench_analytics on the "
                                                               "embedded server.")
        parser.add_argument("--json-out", default="", help="Also write the JSON figures to this file.")
        parser.add_argument("--phase", choices=["measure"], default="", help="internal")

    def handle(self, *args, **options) -> None:
        sizes = self._sizes(options["events"])
        if options["repeat"] < 2 or options["clients"] < 1 or options["ingest_seconds"] <= 0:
            raise CommandError("--repeat must be at least 2, --clients at least 1, --ingest-seconds positive.")
        if options["phase"] == "measure":
            return self._measure(sizes, options)
        url = options["database_url"] or embedded_bench_database(BENCH_DB)
        redis_url = settings.REDIS_URL.rsplit("/", 1)[0] + "/3"
        env = dict(os.environ, DATABASE_URL=url, REDIS_URL=redis_url, PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING",
                   DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.dev"))
        manage = [sys.executable, "manage.py"]
        self.stdout.write(f"bench: migrating {url.split('?')[0]}")
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
        argv = [*manage, "bench_analytics", "--phase", "measure", "--events", options["events"],
                "--repeat", str(options["repeat"]), "--ingest-seconds", str(options["ingest_seconds"]),
                "--clients", str(options["clients"]), "--json-out", options["json_out"]]
        if subprocess.run(argv, cwd=BASE_DIR, env=env).returncode:
            raise CommandError("the measurement failed; see above")

    @staticmethod
    def _sizes(raw: str) -> list[int]:
        try:
            sizes = [int(part.replace("_", "")) for part in raw.split(",") if part.strip()]
        except ValueError:
            raise CommandError("--events takes comma-separated whole numbers, e.g. 1000000,10000000.") from None
        if not sizes or sizes != sorted(sizes) or sizes[0] < 1000:
            raise CommandError("--events sizes must be ascending and at least 1000.")
        return sizes

    # ------------------------------------------------------------------ in the bench database

    def _measure(self, sizes: list[int], options: dict) -> None:
        on_bench_database = BENCH_DB in str(settings.DATABASES["default"]["NAME"])
        if not on_bench_database and not os.environ.get("PARLEY_BENCH_ANY_DATABASE"):
            raise CommandError("The measure phase writes events; it runs only against the bench database.")
        from onboarding.models import AnalyticsEvent

        AnalyticsEvent.objects.all().delete()
        figures: dict = {"clients": options["clients"], "batch": BATCH}
        figures.update(self._ingest(seconds=options["ingest_seconds"], clients=options["clients"]))
        self._users()
        for size in sizes:
            started = time.monotonic()
            self._fill(size)
            self.stdout.write(f"bench: {size:,} events in the table (filled in {time.monotonic() - started:.0f} s)")
            for name, times in self._queries(options["repeat"]).items():
                figures[f"{name}_p50_ms_at_{size}"] = round(median(times), 1)
                figures[f"{name}_p95_ms_at_{size}"] = round(percentile(times, 95), 1)
        self._report(sizes, figures, options["json_out"])

    def _ingest(self, *, seconds: float, clients: int) -> dict:
        from common.stack import daphne_start, process_stop, wait_for
        from onboarding.services import CONSENT_COOKIE, consent_cookie_value

        port = _free_port()
        log = BASE_DIR / "var" / "bench-analytics-daphne.log"
        env = dict(os.environ, PARLEY_ANALYTICS_RATE_PER_MINUTE="100000000")
        daphne = daphne_start(env=env, port=port, log=log)
        try:
            wait_for(lambda: _get_ok(port, "/healthz"), timeout=60, what="Daphne", log=log)
            cookie = f"{CONSENT_COOKIE}={consent_cookie_value(choice='analytics')}"
            events = [{"name": "pageview" if i % 5 else "composer_send", "path": f"/app/chats/{i % 7}/",
                       "url": f"http://localhost/app/chats/{i % 7}/?utm_source=bench&utm_campaign=b{i % 3}",
                       "referrer": "https://example.org/post" if i % 4 == 0 else "", "props": {"n": i}}
                      for i in range(BATCH)]
            body = json.dumps({"events": events}).encode()
            ingest = _hammer(port, seconds=seconds, clients=clients, method="POST", path="/api/analytics/events",
                             body=body, cookie=cookie, expect=202)
            baseline = _hammer(port, seconds=min(seconds, 8), clients=clients, method="GET", path="/healthz",
                               body=b"", cookie="", expect=200)
        finally:
            process_stop(daphne)
        from onboarding.models import AnalyticsEvent

        stored = AnalyticsEvent.objects.count()
        rate = ingest["requests"] * BATCH / ingest["seconds"]
        return {
            "ingest_events_per_s": round(rate, 1),
            "ingest_requests_per_s": round(ingest["requests"] / ingest["seconds"], 1),
            "ingest_request_p50_ms": ingest["p50"], "ingest_request_p95_ms": ingest["p95"],
            "ingest_errors": ingest["errors"], "ingest_stored_events": stored,
            "ingest_expected_events": ingest["requests"] * BATCH,
            "baseline_healthz_requests_per_s": round(baseline["requests"] / baseline["seconds"], 1),
            "baseline_healthz_p50_ms": baseline["p50"],
            "ingest_request_over_healthz": round(ingest["p50"] / baseline["p50"], 2) if baseline["p50"] else None,
        }

    def _users(self) -> None:
        from django.db import connection

        from accounts.models import User

        if User.objects.filter(email__endswith=BENCH_DOMAIN, email__startswith="u").count() == BENCH_USERS:
            return
        User.objects.filter(email__endswith=BENCH_DOMAIN, email__startswith="u").delete()
        with connection.cursor() as cursor:
            cursor.execute(f"""
                INSERT INTO accounts_user (password, is_superuser, email, is_staff, is_active, date_joined, name,
                                           avatar, avatar_kind, time_zone, email_digest)
                SELECT '!', false, 'u' || n || '{BENCH_DOMAIN}', false, true,
                       now() - random() * interval '{DAYS} days', '', '', '', '', ''
                FROM generate_series(1, %s) AS n""", [BENCH_USERS])

    def _fill(self, size: int) -> None:
        """Top the table up to `size` rows, in time order over the last DAYS days (rows arrive in time order,
        which is what the BRIN index on `at` relies on), in chunks of a million."""
        from django.db import connection, transaction

        from accounts.models import User
        from onboarding.models import AnalyticsEvent

        have = AnalyticsEvent.objects.count()
        if have >= size:
            return
        from django.db.models import Max, Min

        bounds = User.objects.filter(email__endswith=BENCH_DOMAIN, email__startswith="u").aggregate(
            low=Min("id"), high=Max("id"))
        low, high = bounds["low"], bounds["high"]
        # The whole table spans DAYS days whatever its size: row n of `size` sits at n/size of the way.
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE onboarding_analyticsevent")
        done = 0
        while done < size:
            step = min(1_000_000, size - done)
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("""
                    INSERT INTO onboarding_analyticsevent (at, name, source, path, referrer_host, utm_source,
                        utm_medium, utm_campaign, utm_term, utm_content, device, country, visitor, user_id, team_id,
                        plan, props)
                    SELECT now() - %(days)s * interval '1 day' * (1 - n::float8 / %(size)s),
                           (ARRAY['pageview','pageview','pageview','pageview','pageview','pageview',
                                  'message_sent','message_sent','reply_completed','reply_completed',
                                  'conversation_started','document_added','citation_opened','voice_turn',
                                  'signed_up','email_verified','api_key_created','purchase_started','paid',
                                  'composer_send'])[1 + hashint %% 20],
                           CASE WHEN hashint %% 3 = 0 THEN 'server' ELSE 'browser' END,
                           (ARRAY['/','/app/','/app/chats/','/app/knowledge/','/pricing/','/app/assistants/',
                                  '/accounts/signup/','/privacy/','/app/badges/','/billing/'])
                                  [1 + (hashint / 20) %% 10],
                           CASE WHEN (hashint / 200) %% 10 < 7 THEN ''
                                ELSE (ARRAY['google.com','news.ycombinator.com','github.com'])
                                     [1 + (hashint / 2000) %% 3] END,
                           CASE WHEN (hashint / 7) %% 10 = 0 THEN 'newsletter' ELSE '' END,
                           CASE WHEN (hashint / 7) %% 10 = 0 THEN 'email' ELSE '' END,
                           CASE WHEN (hashint / 7) %% 10 = 0 THEN 'launch-' || (hashint / 70) %% 4 ELSE '' END,
                           '', '',
                           (ARRAY['desktop','desktop','desktop','mobile','mobile','tablet'])[1 + (hashint / 11) %% 6],
                           '', substr(md5((n / 40)::text), 1, 16),
                           CASE WHEN (hashint / 13) %% 2 = 0
                                THEN %(low)s + (hashint / 26) %% (%(high)s - %(low)s + 1) END,
                           NULL,
                           CASE WHEN (hashint / 13) %% 2 = 0 THEN
                                (CASE WHEN (hashint / 17) %% 7 = 0 THEN 'pro' ELSE 'free' END) ELSE '' END,
                           '{}'::jsonb
                    FROM (SELECT n, abs(hashtext(n::text)::bigint) AS hashint
                          FROM generate_series(%(start)s, %(stop)s) AS n) AS s""",
                    {"days": DAYS, "size": size, "start": done + 1, "stop": done + step, "low": low, "high": high})
            done += step
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE onboarding_analyticsevent")

    def _queries(self, repeat: int) -> dict[str, list[float]]:
        from django.utils import timezone

        from onboarding import selectors

        until = timezone.now()
        since = until - timedelta(days=30)
        runs = {
            "timeseries_30d": lambda: selectors.analytics_timeseries(since=since, until=until, interval="day"),
            "top_pages_30d": lambda: selectors.analytics_top(since=since, until=until, dimension="pages"),
            "top_referrers_30d": lambda: selectors.analytics_top(since=since, until=until, dimension="referrers"),
            "events_by_name_30d": lambda: selectors.analytics_events_by_name(since=since, until=until),
            "active_users": lambda: selectors.analytics_active_users(until=until),
            "retention_8w": lambda: selectors.analytics_retention(since=until - timedelta(weeks=8), until=until),
            "funnel_4_steps_30d": lambda: selectors.analytics_funnel(
                steps=["signed_up", "email_verified", "message_sent", "reply_completed"], since=since, until=until,
                window=timedelta(days=7)),
        }
        client = staff_client(email=f"staff{BENCH_DOMAIN}")
        page = f"/staff/analytics/?since={since:%Y-%m-%d}&until={until:%Y-%m-%d}"

        def dashboard() -> None:
            response = client.get(page)  # the whole staff page: every section's query, the templates
            if response.status_code != 200:
                raise CommandError(f"GET {page} answered {response.status_code}")

        runs["dashboard_page_30d"] = dashboard
        out: dict[str, list[float]] = {}
        for name, run in runs.items():
            run()  # warm-up: plans, caches
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                run()
                times.append((time.perf_counter() - start) * 1000)
            out[name] = times
        return out

    def _report(self, sizes: list[int], figures: dict, json_out: str) -> None:
        ingest = figures["ingest_events_per_s"]
        rows = [
            ("ingest through /api/analytics/events", ingest, "events/s",
             f">= {INGEST_TARGET}: {'met' if ingest >= INGEST_TARGET else 'MISSED'}"),
            ("ingest request p50 / p95", f"{figures['ingest_request_p50_ms']} / {figures['ingest_request_p95_ms']}",
             "ms", f"{BATCH} events a request, {figures['clients']} connections"),
            ("baseline: GET /healthz p50, requests/s",
             f"{figures['baseline_healthz_p50_ms']} / {figures['baseline_healthz_requests_per_s']}", "ms, req/s", ""),
            ("ingest request ÷ healthz request (p50)", figures["ingest_request_over_healthz"], "x", ""),
            ("events stored / sent, errors",
             f"{figures['ingest_stored_events']:,} / {figures['ingest_expected_events']:,}, {figures['ingest_errors']}",
             "", "all stored, 0 errors"),
        ]
        names = sorted({key.split("_p50_ms_at_")[0] for key in figures if "_p50_ms_at_" in key})
        for size in sizes:
            for name in names:
                p95 = figures[f"{name}_p95_ms_at_{size}"]
                target = ""
                if size == 1_000_000 and name != "dashboard_page_30d":
                    target = f"p95 <= {QUERY_TARGET_MS}: {'met' if p95 <= QUERY_TARGET_MS else 'MISSED'}"
                rows.append((f"{name} at {size:,} events, p50 / p95", f"{figures[f'{name}_p50_ms_at_{size}']} / {p95}",
                             "ms", target))
        self.stdout.write(table(rows))
        line = as_json("analytics", figures)
        self.stdout.write(line)
        if json_out:
            Path(json_out).write_text(line + "\n")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_ok(port: int, path: str) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False


def _hammer(port: int, *, seconds: float, clients: int, method: str, path: str, body: bytes, cookie: str,
            expect: int) -> dict:
    """`clients` keep-alive connections sending the request back to back for `seconds`; each request from a
    different user agent (so a different visitor), as many browsers would."""
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    times: list[float] = []
    errors = [0]

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        sent = 0
        while time.monotonic() < deadline:
            sent += 1
            headers = {"User-Agent": f"Mozilla/5.0 (X11; Linux x86_64) BenchBrowser/{index}.{sent}",
                       "Content-Type": "text/plain;charset=UTF-8", "Host": "localhost"}
            if cookie:
                headers["Cookie"] = cookie
            start = time.perf_counter()
            try:
                connection.request(method, path, body=body or None, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == expect
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                if ok:
                    times.append(elapsed)
                else:
                    errors[0] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"requests": len(times), "errors": errors[0], "seconds": time.monotonic() - started,
            "p50": round(median(times), 1) if times else None,
            "p95": round(percentile(times, 95), 1) if times else None}
