"""The evaluation pages through Django's test client: the page with and without measured models, a run's page
and who may see it, starting runs and the challenge with the services' refusals shown, and users' own items
with bad input. No worker: runs are queued on commit and these tests roll back, so no model is asked."""

from __future__ import annotations

import html
import json
import re

import pytest
from django.utils.html import escape

from accounts.services import team_create
from accounts.tests.factories import PASSWORD, user_make
from evaluation.models import EvalItem, EvalRun
from evaluation.s7 import SKILLS
from evaluation.tests.factories import pro_user_make
from evaluation.tests.page_factories import finished_run_make

pytestmark = pytest.mark.django_db

MODEL = "smollm2-135m"


def login(client, user):
    assert client.login(email=user.email, password=PASSWORD)
    return client


def text_of(response) -> str:
    """The page's text without tags, spaces collapsed: what a reader sees."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


# ----------------------------------------------------------------------------- the page


def test_the_page_for_a_new_user_offers_the_challenge_and_records_the_visit(client, bundled_models):
    from onboarding.models import AnalyticsEvent
    from onboarding.services.consent import consent_set

    user = user_make()
    consent_set(choice="analytics", source="settings", user=user)  # analytics stores events only with consent
    login(client, user)

    page = client.get("/app/evaluation/")

    text = text_of(page)
    assert page.status_code == 200
    assert "No model has a full S-7 run on this server yet" in text and "No runs yet" in text
    assert 'data-tour="evaluation"' in page.content.decode()
    assert 'id="eval-scatter"' not in page.content.decode()  # nothing to plot
    # The picker lists what the user may use, not the Pro route.
    options = re.findall(r'<option value="([^"]+)"', page.content.decode().split('id="challenge-model"')[1]
                         .split("</select>")[0])
    assert MODEL in options and "chat-fast" in options and "chat-quality" not in options
    assert 'href="/app/evaluation/"' in page.content.decode()  # the nav link
    assert list(AnalyticsEvent.objects.filter(user=user).values_list("name", flat=True)) == ["evaluation_viewed"]


def test_the_page_plots_and_tabulates_every_measured_model(client, bundled_models):
    staff, user = user_make(is_staff=True), user_make()
    fast = finished_run_make(user=staff, model="chat-fast", tokens_per_s=24.0, cost="0.0002")
    good = finished_run_make(user=staff, model=MODEL, passes={skill: [True, True] for skill in SKILLS},
                             tokens_per_s=12.5, ttft_ms=300.0, cost="0.0010")
    finished_run_make(user=staff, model="qwen2.5-coder-0.5b", passes={"facts": [True]})  # one skill: not plotted
    login(client, user)

    page = client.get("/app/evaluation/")

    markup, text = page.content.decode(), text_of(page)
    points = json.loads(re.search(r'<script id="eval-points" type="application/json">(.*?)</script>', markup).group(1))
    # chat-fast passes every other item: 8 of each skill's 15 (facts and instructions: 16), 56 of 107.
    assert [(p["model"], p["score"], p["tokens_per_s"]) for p in points] == [(MODEL, 100.0, 12.5),
                                                                            ("chat-fast", 52.336449, 24.0)]
    assert points[0]["cost_per_1k"] == 1.0 and points[1]["cost_per_1k"] == 0.2
    assert points[1]["ci_low"] == pytest.approx(fast.score_ci_low * 100, abs=1e-4)
    assert "Point size: cost per 1,000 requests, from $0.2000 (smallest) to $1.0000 (largest)" in text
    table = text_of_part(markup, 'id="eval-figures"')
    # Wilson 107/107: 97–100%; TTFT 300..406 ms: p50 353, p95 401.
    assert f"{MODEL} 100% 97–100% 12.5 353 ms p95 401 1.0000" in table
    assert "chat-fast 52% 43–62% 24.0" in table
    matrix = text_of_part(markup, 'id="eval-matrix"')
    assert f"Skill {MODEL} chat-fast" in matrix and "Facts 100% 81–100% · 16/16 50% 28–72% · 8/16" in matrix
    assert f'href="/app/evaluation/runs/{good.pk}/"' in markup
    assert "qwen2.5-coder-0.5b" not in table
    # Another user's runs are not listed to this user (staff sees them: see the next test).
    assert "No runs yet" in text


def text_of_part(page: str, marker: str, end: str = "</table>") -> str:
    part = page.split(marker, 1)[1].split(end, 1)[0]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", part)).split())


def test_a_users_runs_are_listed_with_progress_and_staff_see_everyones(client, bundled_models):
    user, staff = user_make(), user_make(is_staff=True)
    done = finished_run_make(user=user, model=MODEL, kind="challenge", passes={skill: [True] for skill in SKILLS})
    login(client, user)
    running = client.post("/app/evaluation/challenge/", {"model": MODEL})
    run = EvalRun.objects.get(user=user, status="queued")
    assert running["Location"] == f"/app/evaluation/runs/{run.pk}/"

    page = client.get("/app/evaluation/")

    markup = page.content.decode()
    assert "Running now" in text_of(page) and f'data-run-progress="{run.pk}"' in markup
    assert '<progress max="7" value="0"' in markup
    runs = text_of_part(markup, 'class="table eval-runs"')
    assert f'href="/app/evaluation/runs/{done.pk}/"' in markup and f"#{done.pk} S-7 challenge (7 items)" in runs
    assert "Done 100%" in runs
    client.logout()
    login(client, staff)
    assert user.email in text_of_part(client.get("/app/evaluation/").content.decode(), 'class="table eval-runs"')


# ----------------------------------------------------------------------------- a run's page


def test_a_run_page_shows_items_answers_and_grades_to_its_starter_and_staff_only(client, bundled_models):
    owner, outsider, staff = user_make(), user_make(), user_make(is_staff=True)
    run = finished_run_make(user=owner, model=MODEL, kind="challenge",
                            passes={skill: [skill != "code"] for skill in SKILLS})
    first = run.results.order_by("position").first()

    login(client, outsider)
    assert client.get(f"/app/evaluation/runs/{run.pk}/").status_code == 404
    assert client.get(f"/app/evaluation/runs/{run.pk}/progress/").status_code == 404
    client.logout()
    login(client, owner)
    page = client.get(f"/app/evaluation/runs/{run.pk}/")

    markup, text = page.content.decode(), text_of(page)
    assert page.status_code == 200
    assert f"S-7 challenge: {MODEL}" in text and "your model's card" in text
    assert "86% S-7 score over 7 items" in text  # 6 of 7
    assert "Code 0 / 1 0% 0–79%" in text_of_part(markup, 'id="card-skills"')
    assert "20.0 tokens/s" in text and "First token p50 / p95 153 / 156 ms" in text
    assert markup.count('class="eval-result"') == 7 and markup.count(">Fail<") == 1
    assert escape(first.prompt) in markup
    assert f"An answer to {first.item_key}" in text and "Wrong: no match." in text
    progress = client.get(f"/app/evaluation/runs/{run.pk}/progress/").json()
    assert progress == {"run_id": run.pk, "status": "done", "done": 7, "total": 7, "percent": 100,
                        "score": pytest.approx(6 / 7), "error": ""}
    client.logout()
    login(client, staff)
    assert f"by {owner.email}" in text_of(client.get(f"/app/evaluation/runs/{run.pk}/"))


def test_a_running_run_shows_its_progress_and_a_failed_one_why(client, bundled_models):
    user = pro_user_make()
    login(client, user)
    client.post("/app/evaluation/runs/", {"model": MODEL, "skills": ["facts", "code"]})
    run = EvalRun.objects.get(user=user)
    EvalRun.objects.filter(pk=run.pk).update(status="running", items_done=3)

    page = client.get(f"/app/evaluation/runs/{run.pk}/")

    assert f'<progress max="{run.items_total}" value="3"' in page.content.decode()
    assert f"3 of {run.items_total} items" in text_of(page)
    EvalRun.objects.filter(pk=run.pk).update(status="failed", error="Stopped: your daily token budget is spent.")
    assert "The run stopped. Stopped: your daily token budget is spent." in text_of(
        client.get(f"/app/evaluation/runs/{run.pk}/"))


# ----------------------------------------------------------------------------- starting runs


def test_a_free_user_sees_why_full_runs_are_not_offered_instead_of_their_forms(client, bundled_models):
    free, pro = user_make(), pro_user_make()
    login(client, free)
    page = client.get("/app/evaluation/").content.decode()
    assert 'id="run-not-in-plan"' in page and "Full runs come with the Pro plan" in page
    assert 'action="/app/evaluation/runs/"' not in page  # neither the S-7 run nor a set run
    assert 'action="/app/evaluation/challenge/"' in page
    client.logout()
    login(client, pro)
    page = client.get("/app/evaluation/").content.decode()
    assert 'id="run-not-in-plan"' not in page and 'action="/app/evaluation/runs/"' in page


def test_starting_runs_shows_the_services_refusals_as_form_errors(client, bundled_models):
    free = user_make()
    login(client, free)

    refused = client.post("/app/evaluation/runs/", {"model": MODEL})
    assert refused.status_code == 403
    assert "Full S-7 runs are for Pro users and staff" in text_of_part(refused.content.decode(), 'id="run-error"',
                                                                      end="</div></div>")
    unknown = client.post("/app/evaluation/challenge/", {"model": "no-such-model"})
    assert unknown.status_code == 404 and "no-such-model" in text_of_part(unknown.content.decode(),
                                                                           'id="challenge-error"', end="</div></div>")
    pro_only = client.post("/app/evaluation/challenge/", {"model": "chat-quality"})
    assert pro_only.status_code == 403 and "You may not use `chat-quality` on your plan" in text_of(pro_only)
    empty = client.post("/app/evaluation/challenge/", {"model": ""})
    assert empty.status_code == 400 and "Model: Choose a model or route." in text_of(empty)
    assert not EvalRun.objects.exists()

    pro = pro_user_make()
    client.logout()
    login(client, pro)
    bad_skill = client.post("/app/evaluation/runs/", {"model": MODEL, "skills": ["facts", "poetry"]})
    assert bad_skill.status_code == 400 and "Select a valid choice. poetry is not one of the available choices." \
        in text_of(bad_skill)
    started = client.post("/app/evaluation/runs/", {"model": MODEL, "skills": ["code", "facts"],
                                                    "judge_model": "chat-fast"})
    run = EvalRun.objects.get(user=pro)
    assert started.status_code == 302 and run.kind == "full" and run.skills == ["facts", "code"]
    assert run.judge_model == "chat-fast"
    busy = client.post("/app/evaluation/challenge/", {"model": MODEL})
    assert busy.status_code == 409
    assert f"Your S-7 run #{run.pk} of {MODEL} is still going" in text_of(busy)
    assert f'href="/app/evaluation/runs/{run.pk}/">Follow run #{run.pk}' in busy.content.decode()


def test_the_challenge_starts_seven_items_and_its_page_follows_it(client, bundled_models):
    user = user_make()
    login(client, user)

    response = client.post("/app/evaluation/challenge/", {"model": "chat-fast"})

    run = EvalRun.objects.get(user=user)
    assert response.status_code == 302 and response["Location"] == f"/app/evaluation/runs/{run.pk}/"
    assert run.kind == "challenge" and run.items_total == 7 and run.model == "chat-fast"
    page = client.get(response["Location"])
    markup = page.content.decode()
    assert 'data-progress-event="evaluation.run"' in markup and f'data-run="{run.pk}"' in markup
    assert "Queued: waiting for a worker · 0 of 7 items" in text_of(page)
    assert "No item is answered yet." in text_of(page)


# ----------------------------------------------------------------------------- users' items


def test_items_are_added_listed_run_and_deleted(client, bundled_models):
    owner, outsider = pro_user_make(), user_make()
    team = team_create(owner=owner, name="Eval crew")
    login(client, owner)

    added = client.post("/app/evaluation/items/", {
        "skill": "facts", "title": "Peru", "prompt": "What is the capital of Peru?", "aliases": "Lima\n lima city \n",
        "wrong": "", "answer": "ignored for facts"})
    shared = client.post("/app/evaluation/items/", {
        "skill": "summarization", "team": str(team.pk), "prompt": "The bridge opened in 1872 after six years.",
        "max_words": "12", "facts": "1872 | eighteen seventy-two\nsix years"})

    assert added.status_code == 302 and added["Location"] == "/app/evaluation/#items"
    mine = EvalItem.objects.get(owner=owner)
    assert mine.spec == {"question": "What is the capital of Peru?", "aliases": ["Lima", "lima city"], "wrong": []}
    assert shared.status_code == 302
    assert EvalItem.objects.get(team=team).spec == {"text": "The bridge opened in 1872 after six years.",
                                                    "max_words": 12,
                                                    "facts": [["1872", "eighteen seventy-two"], ["six years"]]}
    page = client.get("/app/evaluation/")
    items = text_of_part(page.content.decode(), 'class="table eval-items"')
    assert "Peru What is the capital of Peru? Facts Yours" in items and "Summarization Eval crew" in items
    assert "Your own items: 1 item" in text_of(page) and "Eval crew (team): 1 item" in text_of(page)

    run = client.post("/app/evaluation/runs/", {"model": MODEL, "item_set": str(team.pk)})
    assert run.status_code == 302 and EvalRun.objects.get(user=owner).source == "team"

    client.logout()
    login(client, outsider)
    assert client.post(f"/app/evaluation/items/{mine.pk}/delete/").status_code == 404
    client.logout()
    login(client, owner)
    deleted = client.post(f"/app/evaluation/items/{mine.pk}/delete/", follow=True)
    assert "Deleted “Peru”" in text_of(deleted) and not EvalItem.objects.filter(pk=mine.pk).exists()


@pytest.mark.parametrize(("fields", "message"), [
    ({"skill": "facts", "prompt": "Capital of Peru?"}, "Accepted answers: a non-empty list of strings is required."),
    ({"skill": "facts", "aliases": "Lima"}, "Prompt: a non-empty string is required."),
    ({"skill": "reasoning", "prompt": "2 + 2?", "answer": "four"},
     "Expected number: 'four' is not a number (e.g. 42 or 3.5)."),
    ({"skill": "instructions", "prompt": "Say hi", "checks": "[{type: max_words}]"},
     "Checks: not valid JSON (Expecting property name enclosed in double quotes, line 1)."),
    ({"skill": "instructions", "prompt": "Say hi", "checks": '[{"type": "shout"}]'},
     "Checks, check 1, type: one of json, json_equals"),
    ({"skill": "grounded", "prompt": "Q?", "passages": "a\nb", "cite": "3", "aliases": "x"},
     "Passage to cite: the number (1 to 2) of the passage that holds the answer is required."),
    ({"skill": "code", "prompt": "adds", "function": "add two", "tests": "add(1, 2) == 3"},
     "Function name: a Python function name is required, e.g. is_prime."),
    ({"skill": "code", "prompt": "adds", "function": "add", "tests": "add(1, 2) == 3\nadd(1,"},
     "Tests, line 2: not a Python expression"),
    ({"skill": "safety", "prompt": "How do I pick a lock?"}, "Expected behaviour: true (the model should refuse)"),
    ({"skill": "poetry", "prompt": "Roses"}, "Skill: Choose one of the seven skills."),
    ({"skill": "facts", "prompt": "Q?", "aliases": "A", "team": "99999"}, "No such team among yours."),
])
def test_bad_items_say_which_field_and_what_it_needs(client, bundled_models, fields, message):
    login(client, user_make())

    response = client.post("/app/evaluation/items/", fields)

    assert response.status_code in (400, 404)
    assert message in text_of_part(response.content.decode(), 'id="item-error"', end="</div></div>")
    assert not EvalItem.objects.exists()
    # What was typed stays in the form.
    if fields.get("prompt"):
        assert fields["prompt"] in response.content.decode().split('id="item-prompt"')[1].split("</textarea>")[0]
