"""The hourly alert check: traffic spikes and error rates against the same hour of the last 4 weeks, one
alert and one staff mail per kind and hour, the request counter behind it, and the /metrics gauges.

Celery runs the mail task in this process (Celery's eager mode), so the mails land in Django's test
outbox; the task, its retries and the guarded UPDATE run as they do in a worker.
"""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import include, path

from accounts.tests.factories import user_make
from chat.models import Message
from chat.services import message_assistant_finish, message_assistant_start
from chat.tests.factories import conversation_make
from common.redis_connection import redis_client
from onboarding.middleware import ERRORS_PREFIX, REQUESTS_PREFIX, RequestCountMiddleware, hour_key
from onboarding.models import AnalyticsAlert, AnalyticsEvent, TrafficHour
from onboarding.selectors.alerts import baseline_hours, last_complete_hour
from onboarding.services.alerts import alerts_check, traffic_hour_flush
from onboarding.tasks import analytics_alert_mail, analytics_alerts_check

pytestmark = pytest.mark.django_db


def _fails(request):
    raise RuntimeError("a bug in a view")


# This module is also a URLconf (for the middleware tests): the real site plus one view that fails.
urlpatterns = [path("test-fails/", _fails), path("", include("config.urls"))]


@pytest.fixture
def eager():
    from config.celery import app

    before = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield app
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


@pytest.fixture
def hour():
    """The hour the check looks at, with nothing counted for it in Redis yet."""
    start = last_complete_hour()
    client = redis_client()
    for at in (start, *baseline_hours(start)):
        client.delete(hour_key(REQUESTS_PREFIX, at), hour_key(ERRORS_PREFIX, at))
    return start


@pytest.fixture
def staff():
    """Who gets the mail: active staff only."""
    user_make(email="inactive-staff@example.com", is_staff=True, is_active=False)
    user_make(email="member@example.com")
    return user_make(email="ops@example.com", is_staff=True)


def events_in(hour, count: int) -> None:
    AnalyticsEvent.objects.bulk_create([
        AnalyticsEvent(name="pageview", source=AnalyticsEvent.Source.BROWSER, path="/",
                       at=hour + timedelta(seconds=3600 * index / max(count, 1)))
        for index in range(count)
    ])


def usual_weeks(hour, per_hour: int = 10) -> None:
    for past in baseline_hours(hour):
        events_in(past, per_hour)


def check(hour, captured) -> list[AnalyticsAlert]:
    with captured(execute=True):
        return alerts_check(hour=hour)


# --------------------------------------------------------------------------- traffic spikes


def test_a_spike_raises_one_alert_and_one_mail_even_when_the_check_runs_twice(
        hour, staff, eager, django_capture_on_commit_callbacks):
    usual_weeks(hour, per_hour=10)
    events_in(hour, 150)

    [alert] = check(hour, django_capture_on_commit_callbacks)
    assert check(hour, django_capture_on_commit_callbacks) == []
    analytics_alert_mail.apply(kwargs={"alert_id": alert.pk})  # a duplicate task finds it mailed

    assert (alert.kind, alert.observed, alert.baseline, alert.threshold) == ("traffic_spike", 150, 10, 100)
    assert AnalyticsAlert.objects.count() == 1
    [message] = mail.outbox
    assert message.to == ["ops@example.com"]
    assert "Traffic spike" in message.subject and f"{hour:%Y-%m-%d %H}:00" in message.subject
    assert "150 events in the hour against 10.0" in message.body
    alert.refresh_from_db()
    assert alert.mailed_at is not None


@pytest.mark.parametrize("current, usual", [
    (25, 10),  # more than usual, under 3x
    (90, 0),  # a new site: no history, but under the minimum of 100 events
])
def test_a_normal_hour_raises_nothing(current, usual, hour, staff, eager, django_capture_on_commit_callbacks):
    usual_weeks(hour, per_hour=usual)
    events_in(hour, current)
    # Outside the hour: not counted for it.
    events_in(hour + timedelta(hours=1), 500)
    events_in(hour - timedelta(hours=1), 500)

    assert check(hour, django_capture_on_commit_callbacks) == []
    assert not AnalyticsAlert.objects.exists() and mail.outbox == []


def test_the_thresholds_are_settings(hour, staff, eager, settings, django_capture_on_commit_callbacks):
    settings.PARLEY_ANALYTICS_SPIKE_FACTOR = 2.0
    settings.PARLEY_ANALYTICS_SPIKE_MIN_EVENTS = 20
    usual_weeks(hour, per_hour=10)
    events_in(hour, 25)

    [alert] = check(hour, django_capture_on_commit_callbacks)
    assert alert.threshold == 20


def test_a_failed_send_leaves_the_alert_unmailed_and_the_next_run_mails_it(
        hour, staff, eager, settings, django_capture_on_commit_callbacks):
    usual_weeks(hour, per_hour=10)
    events_in(hour, 150)
    with socket.socket() as probe:  # a loopback port with nothing listening: the SMTP server is down
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port, 2

    [alert] = alerts_check(hour=hour)  # no commit callbacks run: the task is sent by hand below
    eager.conf.task_eager_propagates = False  # as in a worker: the failure is the task's state
    result = analytics_alert_mail.apply(kwargs={"alert_id": alert.pk})
    eager.conf.task_eager_propagates = True

    assert result.failed()  # retried, then given up
    alert.refresh_from_db()
    assert alert.mailed_at is None and mail.outbox == []

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert check(hour, django_capture_on_commit_callbacks) == []  # no new alert, but the mail goes now
    alert.refresh_from_db()
    assert alert.mailed_at is not None and len(mail.outbox) == 1


# --------------------------------------------------------------------------- error rates


def traffic(hour, *, requests=0, errors=0, replies=0, failed=0) -> None:
    TrafficHour.objects.update_or_create(hour=hour, defaults={
        "requests": requests, "server_errors": errors, "replies": replies, "failed_replies": failed})


def test_a_jump_in_server_errors_raises_an_error_rate_alert(hour, staff, eager, django_capture_on_commit_callbacks):
    for past in baseline_hours(hour):
        traffic(past, requests=1000, errors=10)  # 1% usually
    traffic(hour, requests=400, errors=40)  # 10% now

    [alert] = check(hour, django_capture_on_commit_callbacks)

    assert alert.kind == "error_rate"
    assert (alert.observed, alert.baseline) == pytest.approx((0.10, 0.01))
    assert alert.threshold == pytest.approx(0.05)  # 2x of 1% is under the 5% floor
    assert "server errors: 40 of 400 requests (10.0%)" in alert.detail
    assert len(mail.outbox) == 1 and "Error rate increase" in mail.outbox[0].subject


@pytest.mark.parametrize("requests, errors", [
    (400, 12),  # 3%: twice the usual, but under the 5% floor
    (20, 10),  # 50% of too few requests to mean anything
])
def test_small_or_rare_errors_raise_nothing(requests, errors, hour, staff, eager,
                                           django_capture_on_commit_callbacks):
    for past in baseline_hours(hour):
        traffic(past, requests=1000, errors=10)
    traffic(hour, requests=requests, errors=errors)

    assert check(hour, django_capture_on_commit_callbacks) == []
    assert mail.outbox == []


def test_failed_chat_replies_raise_an_error_rate_alert(hour, staff, eager, settings,
                                                       django_capture_on_commit_callbacks):
    settings.PARLEY_ANALYTICS_ERROR_MIN_REQUESTS = 4
    for past in baseline_hours(hour):
        traffic(past, requests=1000, errors=10, replies=100, failed=1)
    traffic(hour, requests=1000, errors=10)
    conversation = conversation_make()
    for index, status in enumerate([Message.Status.FAILED] * 3 + [Message.Status.DONE] * 2):
        reply = message_assistant_start(conversation=conversation, request_id=f"r{index}", context={})
        message_assistant_finish(message_id=reply.pk, text="" if status == "failed" else "Hi.", status=status)
    Message.objects.filter(role=Message.Role.ASSISTANT).update(created_at=hour + timedelta(minutes=30))

    [alert] = check(hour, django_capture_on_commit_callbacks)

    assert alert.kind == "error_rate" and alert.observed == pytest.approx(0.6)
    assert "failed chat replies: 3 of 5 replies" in alert.detail
    row = TrafficHour.objects.get(hour=hour)
    assert (row.replies, row.failed_replies, row.requests) == (5, 3, 1000)  # requests kept: Redis had none


# --------------------------------------------------------------------------- the counters


def test_the_flush_sets_the_hours_counts_so_running_twice_adds_nothing(hour):
    client = redis_client()
    client.set(hour_key(REQUESTS_PREFIX, hour), 120)
    client.set(hour_key(ERRORS_PREFIX, hour), 3)

    traffic_hour_flush(hour=hour)
    row = traffic_hour_flush(hour=hour)

    assert (row.requests, row.server_errors) == (120, 3)
    assert TrafficHour.objects.get(hour=hour).requests == 120


@pytest.mark.urls(__name__)
def test_the_middleware_counts_requests_and_server_errors_but_not_probes():
    from django.utils import timezone

    client = Client(raise_request_exception=False)
    redis = redis_client()
    now_requests, now_errors = hour_key(REQUESTS_PREFIX, timezone.now()), hour_key(ERRORS_PREFIX, timezone.now())
    redis.delete(now_requests, now_errors)

    assert client.get("/").status_code == 200
    assert client.get("/no-such-page/").status_code == 404
    assert client.get("/test-fails/").status_code == 500
    assert client.get("/healthz").status_code == 200

    assert (redis.get(now_requests), redis.get(now_errors)) == ("3", "1")
    assert 0 < redis.ttl(now_requests) <= 2 * 86400


@pytest.mark.urls(__name__)
def test_a_redis_outage_never_fails_a_request(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    good_url = settings.REDIS_URL
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port}/0"
    redis_client.cache_clear()
    try:
        response = Client(raise_request_exception=False).get("/")
        assert response.status_code == 200
        assert RequestCountMiddleware._skip_until > 0  # counting paused instead of retrying every request
    finally:
        settings.REDIS_URL = good_url
        redis_client.cache_clear()
        RequestCountMiddleware._skip_until = 0.0


# --------------------------------------------------------------------------- beat and /metrics


def test_the_beat_task_checks_the_last_complete_hour(hour, staff, eager, django_capture_on_commit_callbacks):
    usual_weeks(hour, per_hour=10)
    events_in(hour, 150)

    with django_capture_on_commit_callbacks(execute=True):
        assert analytics_alerts_check.apply().get() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert analytics_alerts_check.apply().get() == 0  # a second beat, or a retried one

    assert AnalyticsAlert.objects.get().hour == hour and len(mail.outbox) == 1


def test_beat_checks_hourly_and_prunes_nightly():
    import importlib

    from django.apps import apps
    from django_celery_beat.models import PeriodicTask

    from config.celery import app

    # The migration's own function (transactional tests elsewhere may have emptied what it wrote).
    importlib.import_module("onboarding.migrations.0004_analytics_schedules").forwards(apps, None)
    schedules = {task.task: task.crontab for task in PeriodicTask.objects.filter(
        task__in=["onboarding.tasks.analytics_alerts_check", "onboarding.tasks.analytics_events_prune"],
        enabled=True)}
    hourly, nightly = (schedules["onboarding.tasks.analytics_alerts_check"],
                       schedules["onboarding.tasks.analytics_events_prune"])
    assert (hourly.minute, hourly.hour, str(hourly.timezone)) == ("5", "*", "UTC")
    assert (nightly.minute, nightly.hour) == ("30", "3")
    assert set(schedules) <= set(app.tasks)


def test_the_gauges_are_in_metrics(hour, client, eager, django_capture_on_commit_callbacks):
    usual_weeks(hour, per_hour=10)
    events_in(hour, 150)
    traffic(hour, requests=400, errors=40)
    for past in baseline_hours(hour):
        traffic(past, requests=1000, errors=10)
    check(hour, django_capture_on_commit_callbacks)
    client.force_login(user_make(is_staff=True))

    body = client.get("/metrics").content.decode()

    assert "parley_analytics_events_last_hour 150.0" in body
    assert "parley_analytics_events_baseline_last_hour 10.0" in body
    assert "parley_analytics_error_rate_last_hour 0.1" in body
    assert 'parley_analytics_alerts_active{kind="traffic_spike"} 1.0' in body
    assert 'parley_analytics_alerts_active{kind="error_rate"} 1.0' in body
