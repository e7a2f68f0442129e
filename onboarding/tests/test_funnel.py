"""The staff funnel on a hand-made fixture whose figures were worked out by hand (see each assert)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from accounts.tests.factories import staff_login, user_make
from onboarding.models import Journey, StepProgress, TourStep
from onboarding.selectors import funnel_compute

pytestmark = pytest.mark.django_db

H, D = timedelta(hours=1), timedelta(days=1)
SINCE, UNTIL = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 19, tzinfo=UTC)


def person(email: str, signed_up: datetime, *, verified=None, started=None, finished=None, first_chat=None,
           steps: dict[str, timedelta] | None = None) -> None:
    user = user_make(email=email, verified=False)
    Journey.objects.filter(pk=user.pk).update(
        signed_up_at=signed_up, verified_at=signed_up + verified if verified is not None else None,
        tour_started_at=signed_up + started if started is not None else None,
        tour_finished_at=signed_up + finished if finished is not None else None,
        first_chat_at=signed_up + first_chat if first_chat is not None else None)
    for slug, after in (steps or {}).items():
        StepProgress.objects.create(user=user, step=TourStep.objects.get(slug=slug), reached_at=signed_up + after)


@pytest.fixture
def cohort() -> None:
    # Week of 5 January: two people who got far.
    person("u1@example.com", datetime(2026, 1, 5, 10, tzinfo=UTC), verified=H, started=2 * H, finished=2 * D + 2 * H,
           first_chat=3 * H, steps={"assistants": 2 * H, "chat": 3 * H, "knowledge": D, "usage": D + H,
                                    "profile": 2 * D, "invite": 2 * D + H})
    person("u2@example.com", datetime(2026, 1, 6, 12, tzinfo=UTC), verified=timedelta(minutes=10), started=H,
           first_chat=6 * H, steps={"assistants": H, "chat": 5 * H})
    # Week of 12 January: one verified late and started after the 30-day window, one never verified,
    # one who stopped at step 1.
    person("u3@example.com", datetime(2026, 1, 12, 9, tzinfo=UTC), verified=2 * D, started=40 * D,
           steps={"assistants": 40 * D})
    person("u4@example.com", datetime(2026, 1, 13, 8, tzinfo=UTC))
    person("u5@example.com", datetime(2026, 1, 14, tzinfo=UTC), verified=timedelta(minutes=30), started=H,
           steps={"assistants": H})
    # Outside the period: not counted anywhere.
    person("u6@example.com", datetime(2025, 12, 1, tzinfo=UTC), verified=H, started=H, finished=D, first_chat=H,
           steps={"assistants": H})


def test_stages_counts_conversion_drop_off_and_times(cohort):
    funnel = funnel_compute(since=SINCE, until=UNTIL, window_days=30)
    rows = {stage.key: stage for stage in funnel.stages}

    assert [stage.key for stage in funnel.stages] == [
        "signed_up", "verified", "tour_started", "step:assistants", "step:chat", "step:knowledge", "step:usage",
        "step:profile", "step:invite", "tour_finished", "first_chat"]
    assert [stage.users for stage in funnel.stages] == [5, 4, 3, 3, 2, 1, 1, 1, 1, 1, 2]
    # Verified: 10 min, 30 min, 1 h, 2 d -> median (1800 + 3600) / 2; p90 at rank 0.9 * 3 = 2.7.
    assert rows["verified"].median_s == 2700
    assert rows["verified"].p90_s == pytest.approx(3600 + 0.7 * (172800 - 3600))
    assert rows["verified"].conversion == 80 and rows["verified"].drop_off == 1
    # Started: 1 h, 1 h, 2 h (u3 started after the window).
    assert rows["tour_started"].median_s == 3600 and rows["tour_started"].p90_s == pytest.approx(6480)
    assert rows["tour_started"].conversion == 75
    # Chat step: 3 h and 5 h.
    assert rows["step:chat"].median_s == 14400 and rows["step:chat"].p90_s == pytest.approx(17280)
    assert rows["step:chat"].conversion == pytest.approx(200 / 3) and rows["step:chat"].drop_off == 1
    assert rows["step:knowledge"].conversion == 50
    assert rows["tour_finished"].median_s == 180000 and rows["tour_finished"].of_signups == 20
    # The first chat converts from sign-ups, not from finishing the tour.
    assert rows["first_chat"].median_s == 16200
    assert rows["first_chat"].conversion == 40 and rows["first_chat"].drop_off == 3


def test_weekly_cohorts(cohort):
    funnel = funnel_compute(since=SINCE, until=UNTIL, window_days=30)

    assert [(c.week.date().isoformat(), c.signups, c.verified, c.started, c.finished, c.first_chat)
            for c in funnel.cohorts] == [("2026-01-05", 2, 2, 2, 1, 2), ("2026-01-12", 3, 2, 1, 0, 0)]


def test_a_longer_window_counts_the_late_starter(cohort):
    funnel = funnel_compute(since=SINCE, until=UNTIL, window_days=60)
    rows = {stage.key: stage for stage in funnel.stages}

    assert rows["tour_started"].users == 4 and rows["step:assistants"].users == 4


def test_no_sign_ups_is_empty_not_an_error():
    funnel = funnel_compute(since=SINCE, until=UNTIL, window_days=30)

    assert funnel.stages[0].users == 0 and funnel.stages[1].conversion is None and funnel.cohorts == []


def test_the_admin_page_renders_charts_data_and_a_csv(client, cohort):
    staff = user_make(email="staff@example.com", is_staff=True, is_superuser=True)
    staff_login(client, staff)
    url = "/admin/onboarding/journey/funnel/?since=2026-01-05&until=2026-01-18&window=30"

    page = client.get(url)
    download = client.get(url + "&format=csv")

    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="ob-funnel-data"' in body and "/static/vendor/chart.js/chart.umd.js" in body
    assert "Step 2: Try a chat" in body and "45 min" in body  # the verified median, 2,700 s
    assert download["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.content.decode())))
    assert rows[0][:3] == ["stage", "users", "percent_of_signups"]
    assert rows[1] == ["Signed up", "5", "100.0", "", "", "0.0", "0.0"]
    assert rows[2] == ["Verified their email", "4", "80.0", "80.0", "1", "2700.0", "122040.0"]
    assert ["2026-01-12", "3", "2", "1", "0", "0"] in rows


def test_the_funnel_is_for_staff_only(client):
    client.force_login(user_make())

    response = client.get("/admin/onboarding/journey/funnel/")

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_bad_filter_values_fall_back_to_the_defaults(client):
    staff_login(client, user_make(is_staff=True, is_superuser=True))

    response = client.get("/admin/onboarding/journey/funnel/?since=yesterday&window=-4")

    assert response.status_code == 200
