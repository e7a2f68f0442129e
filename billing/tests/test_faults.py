"""Faults: a worker killed mid-charge, two charge runs at once, two beat processes at once. Each must end
with exactly one successful charge per due item, checked against the stand-in's PaymentIntents."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from billing import clock
from billing.models import ChargeAttempt, Purchase
from billing.offer_defaults import CHARGE_TASK_NAME
from billing.services import charge_due_run
from billing.tests.factories import DECLINE_ON_CHARGE, VISA, purchase_make

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("djstripe_local")]

BASE_DIR = Path(__file__).resolve().parents[2]
A = ChargeAttempt.Status
S = Purchase.Status


def _charge_process(child_env, *, crash_at: str = "", not_before: float = 0) -> subprocess.Popen:
    env = dict(child_env, PARLEY_BILLING_CRASH_AT=crash_at)
    return subprocess.Popen(
        [sys.executable, "manage.py", "billing_charge_due", "--not-before", str(not_before)],
        cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _assert_exactly_once(stand_in, purchases: list[Purchase]) -> None:
    """One PaymentIntent per ledger attempt, one success per paid item, nothing left mid-flight."""
    payment_intents = stand_in.payment_intents()
    attempts = list(ChargeAttempt.objects.all())
    assert sorted(pi["id"] for pi in payment_intents) == sorted(a.payment_intent_id for a in attempts)
    assert not [a for a in attempts if a.status == A.SENDING]
    assert not Purchase.objects.filter(status=S.CHARGING).exists()
    successes = Counter(pi["metadata"]["parley_purchase_id"] for pi in payment_intents if pi["status"] == "succeeded")
    for purchase in purchases:
        purchase.refresh_from_db()
        expected = 1 if purchase.status == S.PAID else 0
        assert successes[str(purchase.pk)] == expected, purchase


@pytest.mark.parametrize("crash_at", ["after_confirm", "after_create"])
def test_worker_killed_mid_charge_is_reconciled_without_a_second_charge(child_env, stand_in, crash_at):
    purchase = purchase_make(card=VISA, grace_over=True)

    process = _charge_process(child_env, crash_at=crash_at)
    process.communicate(timeout=120)

    assert process.returncode == -9  # SIGKILL, as a dead machine would
    attempt = purchase.attempts.get()
    assert attempt.status == A.SENDING and attempt.payment_intent_id
    [payment_intent] = stand_in.payment_intents()
    assert payment_intent["status"] == ("succeeded" if crash_at == "after_confirm" else "requires_confirmation")

    charge_due_run()  # a fresh `sending` row may belong to a live worker: left alone
    attempt.refresh_from_db()
    assert attempt.status == A.SENDING

    clock.clock_advance(seconds=180)
    charge_due_run()

    attempt.refresh_from_db()
    assert (attempt.status, attempt.settled_by) == (A.SUCCEEDED, "reconcile")
    purchase.refresh_from_db()
    assert purchase.status == S.PAID
    assert [pi["id"] for pi in stand_in.payment_intents()] == [attempt.payment_intent_id]
    _assert_exactly_once(stand_in, [purchase])


def test_two_charge_runs_at_once_charge_each_due_item_once(child_env, stand_in):
    purchases = [purchase_make(card=DECLINE_ON_CHARGE if i % 4 == 0 else VISA, grace_over=True) for i in range(16)]

    start = time.time() + 4  # both processes are up by then and start claiming together
    processes = [_charge_process(child_env, not_before=start) for _ in range(2)]
    outputs = [p.communicate(timeout=180)[0] for p in processes]

    assert [p.returncode for p in processes] == [0, 0], outputs
    _assert_exactly_once(stand_in, purchases)
    # 16 full charges, plus the first installment of each of the 4 declined ones.
    assert len(stand_in.payment_intents()) == 20
    assert Counter(p.status for p in Purchase.objects.all()) == {S.PAID: 12, S.PAST_DUE: 4}


@pytest.mark.worker
def test_two_beat_processes_at_once_charge_each_due_item_once(child_env, stand_in, celery_worker, tmp_path):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(
        name=CHARGE_TASK_NAME, defaults={"task": "billing.tasks.charge_due", "interval": every_second,
                                         "queue": "billing", "enabled": True},
    )
    purchases = [purchase_make(card=DECLINE_ON_CHARGE if i % 3 == 0 else VISA, grace_over=True) for i in range(9)]
    log_before = celery_worker["log"].read_text().count("billing.tasks.charge_due")

    beats = []
    for n in range(2):
        log = (tmp_path / f"beat{n}.log").open("w")
        beats.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO",
             "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
             "--pidfile", str(tmp_path / f"b{n}.pid")],
            cwd=BASE_DIR, env=child_env, stdout=log, stderr=subprocess.STDOUT,
        ))
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            runs = celery_worker["log"].read_text().count("billing.tasks.charge_due") - log_before
            settled = not ChargeAttempt.objects.filter(status=A.SENDING).exists()
            if runs >= 6 and settled and not Purchase.objects.filter(status__in=(S.GRACE, S.CHARGING)).exists():
                break
            time.sleep(0.25)
    finally:
        for beat in beats:
            beat.terminate()
            beat.wait(timeout=15)
    sent = [(tmp_path / f"beat{n}.log").read_text().count("Sending due task") for n in range(2)]
    assert all(count >= 1 for count in sent), sent  # both beats really did send the task
    _assert_exactly_once(stand_in, purchases)
    assert len(stand_in.payment_intents()) == 9 + 3
