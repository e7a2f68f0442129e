"""Who may use which model (plans, teams, staff), the model picker's choices, savings against reference
APIs on a hand-checked ledger, and models installed in the background (their routes fall back meanwhile)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from accounts.services import team_create
from accounts.tests.factories import user_make
from inference.models import ModelSpec, ReferencePrice, Route, UsageRecord
from inference.selectors import chat_model_choices, chat_routes_for_plan, routes_usable, savings_of_user
from inference.services import (
    Caller,
    catalog_changed,
    model_install_run,
    modelspec_bench_record,
    modelspec_install_progress,
    modelspec_register,
    route_set,
)
from inference.tests.factories import api_key_make

# The model picker names the engine that serves a model, so these wait for the llama-server build.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.engine]


def _route(alias: str, **access) -> Route:
    route = route_set(alias=alias, task="chat", spec_names=["smollm2-135m"])
    Route.objects.filter(pk=route.pk).update(**{k: v for k, v in access.items() if k != "teams"})
    catalog_changed()  # .update() sends no signal
    if access.get("teams"):
        route.access_teams.set(access["teams"])
    return route


def test_access_rules_for_plans_teams_and_staff(bundled_models):
    owner, outsider, staff = user_make(), user_make(), user_make(is_staff=True)
    team = team_create(owner=owner, name="Lighthouse crew")
    _route("chat-pro", access_plans=["pro"])
    _route("chat-crew", teams=[team])
    _route("chat-staff", staff_only=True)
    _route("chat-open")

    def usable(user) -> set[str]:
        return {route.alias for route in routes_usable(caller=Caller(user=user), task="chat")}

    assert {"chat-open", "chat-crew"} <= usable(owner) and not {"chat-pro", "chat-staff"} & usable(owner)
    assert "chat-open" in usable(outsider) and not {"chat-pro", "chat-crew", "chat-staff"} & usable(outsider)
    assert {"chat-pro", "chat-crew", "chat-staff", "chat-open"} <= usable(staff)
    assert "chat-pro" in {route.alias for route in chat_routes_for_plan(plan="pro")}
    assert "chat-pro" not in {route.alias for route in chat_routes_for_plan(plan="free")}


def test_v1_refuses_a_route_the_plan_lacks_and_names_the_plan(bundled_models):
    from billing.services import catalog_install

    catalog_install()  # the plan names the message uses
    _route("chat-pro", access_plans=["pro"])
    _, secret = api_key_make()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")

    response = client.post("/v1/chat/completions", json.dumps({
        "model": "chat-pro", "messages": [{"role": "user", "content": "Hi"}]}), content_type="application/json")

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "model_not_in_plan" and error["plans"] == ["pro"]
    assert "`chat-pro` is included in Parley Pro, not in your Free plan" in error["message"]
    assert error["upgrade_url"] == "/billing/"


def test_the_model_picker_lists_choices_with_speed_cost_and_reasons(bundled_models):
    _route("chat-pro", access_plans=["pro"])
    modelspec_bench_record(name="smollm2-135m", ttft_ms=120.0, tokens_per_s=24.0)
    choices = {choice["id"]: choice for choice in chat_model_choices(caller=Caller(user=user_make()))}

    pro, default = choices["chat-pro"], choices["chat-default"]
    assert not pro["allowed"] and pro["reason"] == "included in pro"
    assert default["allowed"] and default["engine"] == "local" and default["cost_per_request"] > 0
    assert "runs here on" in default["capabilities"] and "falls back to smollm2-135m" in default["capabilities"]
    assert choices["smollm2-135m"]["speed"] == "about 24 tokens/s, first word in 0.1 s"


@pytest.mark.worker
def test_a_model_still_installing_is_passed_over_and_the_reply_says_why(celery_worker, bundled_models):
    modelspec_register(name="qwen-coming-soon", defaults={
        "task": "chat", "backend": "llama_cpp", "source": "/nonexistent/not-yet.gguf", "description": "Coming soon"})
    modelspec_install_progress(name="qwen-coming-soon", state="installing", progress=0.4)
    route_set(alias="chat-soon", task="chat", spec_names=["qwen-coming-soon", "smollm2-135m"])
    _, secret = api_key_make()
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")

    response = client.post("/v1/chat/completions", json.dumps({
        "model": "chat-soon", "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]}),
        content_type="application/json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"] == "smollm2-135m"
    assert body["parley"]["fallback_reason"] == "Coming soon is still being installed"
    choice = next(c for c in chat_model_choices(caller=Caller(user=user_make())) if c["id"] == "chat-soon")
    assert choice["installing"] == "installing, 40%" and choice["allowed"]  # its next model serves meanwhile
    alone = next(c for c in chat_model_choices(caller=Caller(user=user_make())) if c["id"] == "qwen-coming-soon")
    assert alone["installing"] == "installing, 40%"


def test_a_background_install_finishes_ready_or_says_why_it_stopped(bundled_models):
    modelspec_install_progress(name="whisper-tiny.en", state="installing", progress=0.0)
    assert model_install_run(name="whisper-tiny.en").install_state == "ready"

    with override_settings(PARLEY_CONVERT_MIN_RAM_GB=10**6):  # more RAM than any machine has
        spec = model_install_run(name="whisper-tiny.en")
    assert spec.install_state == "skipped"
    assert "needs about 1,000,000 GB of RAM and this machine has" in spec.install_message


def test_savings_on_a_hand_checked_ledger(bundled_models):
    """One chat (1M prompt + 1M completion tokens), 10 minutes of audio, 1M characters of speech, each taking
    one hour of compute at $0.10: gpt-4o-mini would be $0.75, whisper-1 $0.06, tts-1 $15.00."""
    from inference.catalog import REFERENCE_PRICES

    for row in REFERENCE_PRICES:
        ReferencePrice.objects.update_or_create(task=row["task"], name=row["name"], defaults=row)
    user = user_make()
    hour_ms = 3_600_000
    common = {"user": user, "duration_ms": hour_ms}
    UsageRecord.objects.create(request_id="r1", model_name="qwen", task="chat", prompt_tokens=1_000_000,
                               completion_tokens=1_000_000, **common)
    UsageRecord.objects.create(request_id="r2", model_name="whisper", task="stt", audio_seconds=600, **common)
    UsageRecord.objects.create(request_id="r3", model_name="piper", task="tts", characters=1_000_000, **common)
    UsageRecord.objects.create(request_id="r4", model_name="qwen", task="chat", prompt_tokens=5, outcome="error",
                               **common)  # failed requests are not savings
    old = UsageRecord.objects.create(request_id="r5", model_name="qwen", task="chat", prompt_tokens=9, **common)
    UsageRecord.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))

    with override_settings(PARLEY_COMPUTE_COST_PER_HOUR=0.10):
        savings = savings_of_user(user=user, days=30)

    by_task = {t["task"]: t for t in savings["tasks"]}
    assert by_task["chat"]["reference_cost"] == Decimal("0.7500")
    assert by_task["chat"]["compute_cost"] == Decimal("0.1000")
    assert by_task["stt"]["reference_cost"] == Decimal("0.0600")
    assert by_task["tts"]["reference_cost"] == Decimal("15.0000")
    assert savings["reference_cost"] == Decimal("15.8100") and savings["compute_cost"] == Decimal("0.3000")
    assert savings["saved"] == Decimal("15.5100")
    assert by_task["chat"]["requests"] == 1


def test_the_usage_api_shows_reference_and_compute_costs(bundled_models):
    from inference.catalog import REFERENCE_PRICES

    for row in REFERENCE_PRICES:
        ReferencePrice.objects.update_or_create(task=row["task"], name=row["name"], defaults=row)
    api_key, secret = api_key_make()
    user = api_key.user
    UsageRecord.objects.create(request_id="a1", user=user, model_name="qwen", task="chat", prompt_tokens=2_000,
                               completion_tokens=1_000, duration_ms=36_000)
    rows = Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/usage/").json()
    assert rows[0]["reference"] == "OpenAI gpt-4o-mini"
    assert rows[0]["reference_cost"] == "0.0009" and rows[0]["compute_cost"] == "0.0010"


def test_modelspec_rows_keep_their_access_when_registered_again(bundled_models):
    from inference.services import bundled_models_register

    Route.objects.filter(alias="chat-quality").update(access_plans=[])  # staff opened it to everyone
    catalog_changed()
    bundled_models_register()
    assert Route.objects.get(alias="chat-quality").access_plans == []
    assert ModelSpec.objects.get(name="qwen2.5-coder-0.5b").access_plans == []
