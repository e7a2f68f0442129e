"""Benchmark the charge run: N purchases whose grace ended, charged by two worker processes at once.

    python manage.py bench_billing [--n 10000] [--workers 2]

It runs against its own database (`parley_bench` on the embedded PostgreSQL, or --database-url) and
its own localstripe on a free loopback port, so neither your data nor a running `make run` is
touched. Cards: 80% 4242… (paid), 20% 4000…0341 (saved, then declined: they fall back to
installments, whose first one is tried at once and declined too). It prints a table and one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config import services

BASE_DIR = Path(__file__).resolve().parents[3]
BENCH_DB = "parley_bench"
VISA = "4242424242424242"
DECLINE_ON_CHARGE = "4000000000000341"


class Command(BaseCommand):
    help = "Benchmark charging N due purchases with two workers against localstripe."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--n", type=int, default=10_000)
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--database-url", default="", help="Default: database parley_bench on the embedded server.")
        parser.add_argument("--phase", choices=["setup", "verify"], default="", help="internal")
        parser.add_argument("--out", default="", help="internal")

    def handle(self, *args, **options) -> None:
        if options["phase"] == "setup":
            return self._setup(options["n"])
        if options["phase"] == "verify":
            return self._verify(options["out"])
        return self._orchestrate(options)

    # ------------------------------------------------------------------ parent

    def _orchestrate(self, options) -> None:
        n, workers = options["n"], options["workers"]
        url = options["database_url"] or self._embedded_bench_database()
        port = services._free_port()
        stripe_url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, DATABASE_URL=url, STRIPE_API_BASE=stripe_url, PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING",
                   DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.dev"))
        env.pop("STRIPE_SECRET_KEY", None)
        data_dir = services.VAR_DIR / "stripe-bench"
        stand_in = subprocess.Popen(
            [sys.executable, "-m", "billing.localstripe_server", "--port", str(port), "--data-dir", str(data_dir),
             "--from-scratch", "--quiet"], cwd=BASE_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while not services.port_in_use(port):
                if time.monotonic() > deadline or stand_in.poll() is not None:
                    raise CommandError("localstripe did not start for the benchmark.")
                time.sleep(0.05)
            manage = [sys.executable, "manage.py"]
            self.stdout.write(f"bench: migrating {url.split('?')[0]}")
            subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
            self.stdout.write(f"bench: creating {n} purchases whose grace ended (customers and cards at the stand-in)")
            started = time.monotonic()
            subprocess.run([*manage, "bench_billing", "--phase", "setup", "--n", str(n)], cwd=BASE_DIR, env=env,
                           check=True)
            setup_seconds = time.monotonic() - started
            self.stdout.write(f"bench: setup took {setup_seconds:.1f} s; charging with {workers} workers")
            start_at = time.time() + 3  # both processes are imported and connected by then
            runs = [subprocess.Popen([*manage, "billing_charge_due", "--not-before", str(start_at)], cwd=BASE_DIR,
                                     env=env, stdout=subprocess.PIPE, text=True) for _ in range(workers)]
            outputs = [run.communicate()[0] for run in runs]
            elapsed = time.time() - start_at
            if any(run.returncode for run in runs):
                raise CommandError(f"a charge worker failed: {outputs}")
            with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
                subprocess.run([*manage, "bench_billing", "--phase", "verify", "--out", out.name], cwd=BASE_DIR,
                               env=env, check=True)
                result = json.load(open(out.name))
        finally:
            stand_in.terminate()
            stand_in.wait(timeout=30)
        declined = n // 5
        expected = n + declined  # each declined purchase: the full charge plus installment 1
        result.update({
            "n": n, "workers": workers, "seconds": round(elapsed, 2), "setup_seconds": round(setup_seconds, 1),
            "charges_per_second": round(result["attempts"] / elapsed, 1) if elapsed > 0 else None,
            "expected_payment_intents": expected,
            "payment_intents_match": result["stand_in_payment_intents"] == expected == result["attempts"],
            "worker_stats": [json.loads(o.strip().splitlines()[-1]) for o in outputs],
        })
        rows = [
            ("purchases", n), ("workers", workers), ("charge run (s)", result["seconds"]),
            ("charges/second", result["charges_per_second"]),
            ("PaymentIntents in stand-in", result["stand_in_payment_intents"]),
            ("PaymentIntents expected", expected), ("ledger attempts", result["attempts"]),
            ("succeeded PaymentIntents", result["stand_in_succeeded"]), ("paid purchases", result["paid"]),
            ("purchases on installments/past due", result["installments"]),
            ("purchases left in charging", result["charging"]), ("attempts left in sending", result["sending"]),
        ]
        width = max(len(label) for label, _ in rows)
        for label, value in rows:
            self.stdout.write(f"{label:<{width}}  {value}")
        self.stdout.write(json.dumps(result, sort_keys=True))
        if not result["payment_intents_match"] or result["charging"] or result["sending"]:
            raise CommandError("exactly-once check failed; see the figures above")

    def _embedded_bench_database(self) -> str:
        info = services.postgres_info()
        if info is None:
            raise CommandError("The embedded PostgreSQL is not running; pass --database-url.")
        import psycopg

        with psycopg.connect(info.url("postgres"), autocommit=True) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{BENCH_DB}"')
        return info.url(BENCH_DB)

    # ------------------------------------------------------------------ phases (in the bench database)

    def _setup(self, n: int) -> None:
        from django.contrib.auth.hashers import make_password

        from accounts.models import User
        from billing import clock, stripe_api
        from billing.models import ChargeAttempt, Installment, PaymentProfile, Purchase, Refund, WebhookReceipt
        from billing.services import catalog_install

        on_bench_database = "parley_bench" in str(settings.DATABASES["default"]["NAME"])
        if settings.BILLING_MODE != "local" or (not on_bench_database \
                                                 and not os.environ.get("PARLEY_BENCH_ANY_DATABASE")):
            raise CommandError("The setup phase runs only against the bench database and localstripe.")
        for model in (WebhookReceipt, Refund, ChargeAttempt, Installment, Purchase, PaymentProfile):
            model.objects.all().delete()
        User.objects.filter(email__endswith="@bench.parley.invalid").delete()
        offer = catalog_install()
        password = make_password(None)
        users = User.objects.bulk_create(
            [User(email=f"bench{i}@bench.parley.invalid", password=password) for i in range(n)], batch_size=2000
        )

        def card(index: int) -> tuple[str, str]:
            customer = stripe_api.customer_create(user_id=users[index].pk, email=users[index].email)
            number = DECLINE_ON_CHARGE if index % 5 == 0 else VISA
            payment_method = stripe_api.payment_method_create_test_card(number=number, exp_month=12, exp_year=2035,
                                                                        cvc="123")
            stripe_api.payment_method_attach(payment_method_id=payment_method["id"], customer_id=customer["id"])
            return customer["id"], payment_method["id"]

        with ThreadPoolExecutor(max_workers=8) as pool:
            cards = list(pool.map(card, range(n)))
        PaymentProfile.objects.bulk_create([
            PaymentProfile(user=user, stripe_customer_id=customer, payment_method_id=method, card_brand="visa",
                           card_last4="0341" if i % 5 == 0 else "4242")
            for i, (user, (customer, method)) in enumerate(zip(users, cards, strict=True))
        ], batch_size=2000)
        now = clock.now()
        Purchase.objects.bulk_create([
            Purchase(user=user, offer=offer, status=Purchase.Status.GRACE, amount_cents=offer.price_cents,
                     currency=offer.currency, started_at=now - timedelta(hours=25),
                     grace_ends_at=now - timedelta(hours=1), reminder_sent_at=now - timedelta(hours=3),
                     terms_version=offer.terms_version, terms_accepted_at=now - timedelta(hours=25),
                     installment_interval_days=offer.installment_interval_days)
            for user in users
        ], batch_size=2000)

    def _verify(self, out: str) -> None:
        import stripe

        from billing.models import ChargeAttempt, Purchase

        payment_intents = list(stripe.PaymentIntent.list(api_key=settings.STRIPE_SECRET_KEY, limit=100)
                               .auto_paging_iter())
        statuses = Purchase.objects.values_list("status", flat=True)
        result = {
            "stand_in_payment_intents": len(payment_intents),
            "stand_in_succeeded": sum(1 for pi in payment_intents if pi["status"] == "succeeded"),
            "attempts": ChargeAttempt.objects.count(),
            "sending": ChargeAttempt.objects.filter(status=ChargeAttempt.Status.SENDING).count(),
            "charging": sum(1 for s in statuses if s == Purchase.Status.CHARGING),
            "paid": sum(1 for s in statuses if s == Purchase.Status.PAID),
            "installments": sum(1 for s in statuses if s in (Purchase.Status.INSTALLMENTS, Purchase.Status.PAST_DUE)),
        }
        Path(out).write_text(json.dumps(result))
