"""Concurrent events award a badge exactly once, and only the winner sends a toast."""

from __future__ import annotations

import threading

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection

from accounts.tests.factories import user_make
from common.notifications import user_group
from onboarding.models import Award, Event
from onboarding.services import badge_award, event_record

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8


def run_at_once(target) -> list:
    """Run `target` in THREADS threads released together; each thread has its own DB connection."""
    barrier, results, errors = threading.Barrier(THREADS), [], []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(target())
        except Exception as exc:  # noqa: BLE001 - handed to the test thread and asserted there
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def toasts_for(user) -> list[dict]:
    """Listen on the user's notification group (the real Redis channel layer) and collect toasts."""
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(user_group(user.pk), channel)
    received: list[dict] = []

    def drain() -> list[dict]:
        async def read_all() -> None:
            import asyncio

            while True:
                try:
                    message = await asyncio.wait_for(layer.receive(channel), timeout=1.0)
                except TimeoutError:
                    return
                if message.get("event") == "badge.awarded":
                    received.append(message["data"])

        async_to_sync(read_all)()
        return received

    return drain


def test_parallel_award_calls_insert_one_award_and_send_one_toast():
    user = user_make()
    drain = toasts_for(user)

    results = run_at_once(lambda: badge_award(user_id=user.pk, rule="first_chat", event=Event.REPLY_COMPLETED))

    assert sum(result is not None for result in results) == 1
    assert Award.objects.filter(user=user).count() == 1
    assert [toast["slug"] for toast in drain()] == ["first-chat"]


def test_parallel_reply_events_award_first_chat_once():
    user = user_make()
    drain = toasts_for(user)

    results = run_at_once(lambda: event_record(user_id=user.pk, name=Event.REPLY_COMPLETED, data={"via": "text"}))

    assert sum(len(awards) for awards in results) == 1
    assert list(Award.objects.filter(user=user).values_list("badge__slug", flat=True)) == ["first-chat"]
    assert [toast["slug"] for toast in drain()] == ["first-chat"]


def test_parallel_first_events_create_one_journey():
    user = user_make()
    from onboarding.models import Journey

    Journey.objects.filter(pk=user.pk).delete()  # as for a user created before onboarding existed

    run_at_once(lambda: event_record(user_id=user.pk, name=Event.API_KEY_USED))

    assert Journey.objects.filter(pk=user.pk).count() == 1
