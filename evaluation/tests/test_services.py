"""Who may start which run, users' items with bad input, what a finished run records, and who may read it.
No worker here: runs are queued on commit, and these tests roll back, so nothing is asked of a model."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.services import team_create
from accounts.tests.factories import user_make
from common.errors import ApplicationError
from evaluation.models import EvalItem, EvalResult, EvalRun
from evaluation.s7 import SKILLS
from evaluation.scoring import wilson
from evaluation.selectors import (
    evalitems_of_user,
    evalresults_of_run,
    evalrun_get_for,
    evalruns_of_model,
    models_latest_figures,
    skill_table,
)
from evaluation.services import evalitem_create, evalitem_delete, evalrun_execute, evalrun_finish, evalrun_start
from evaluation.tests.factories import pro_user_make

pytestmark = pytest.mark.django_db

MODEL = "smollm2-135m"


def _error(call) -> ApplicationError:
    with pytest.raises(ApplicationError) as raised:
        call()
    return raised.value


# ----------------------------------------------------------------------------- who may run what


def test_a_free_user_may_take_the_challenge_but_not_a_full_run(bundled_models):
    user = user_make()

    refused = _error(lambda: evalrun_start(user=user, model=MODEL))
    assert refused.status == 403 and refused.code == "evaluation_not_in_plan"
    assert "S-7 challenge" in refused.message
    run = evalrun_start(user=user, model=MODEL, kind="challenge")

    assert run.status == "queued" and run.kind == "challenge" and run.items_total == 7
    assert [key.split(":")[1].rsplit("-", 1)[0] for key in run.item_keys] == list(SKILLS)
    busy = _error(lambda: evalrun_start(user=user, model=MODEL, kind="challenge"))
    assert busy.status == 409 and busy.extra["run_id"] == run.pk


def test_staff_and_pro_users_may_start_full_runs_of_chosen_skills(bundled_models):
    staff, pro = user_make(is_staff=True), pro_user_make()

    everything = evalrun_start(user=staff, model=MODEL)
    chosen = evalrun_start(user=pro, model="chat-fast", skills=["code", "facts"], limit=2)

    assert everything.items_total == len(everything.item_keys) >= 105 and everything.skills == list(SKILLS)
    assert chosen.skills == ["facts", "code"]  # S-7's order, whatever order they were asked in
    assert chosen.item_keys == ["s7:facts-01", "s7:facts-02", "s7:code-01", "s7:code-02"]
    assert evalrun_start(user=staff, model=MODEL, kind="challenge").items_total == 7  # staff: no one-at-a-time rule


def test_bad_run_requests_say_what_was_wrong(bundled_models):
    staff, free = user_make(is_staff=True), user_make()

    assert _error(lambda: evalrun_start(user=staff, model="no-such-model")).status == 404
    assert _error(lambda: evalrun_start(user=staff, model="embed-default")).code == "model_not_supported"
    unknown = _error(lambda: evalrun_start(user=staff, model=MODEL, skills=["facts", "poetry"]))
    assert unknown.status == 400 and unknown.message.startswith("Unknown skill 'poetry'. The S-7 skills are: facts")
    assert _error(lambda: evalrun_start(user=staff, model=MODEL, kind="marathon")).extra["param"] == "kind"
    assert _error(lambda: evalrun_start(user=staff, model=MODEL, limit=0)).extra["param"] == "limit"
    # chat-quality is a Pro route: a free user may not have it evaluated, not even in a challenge.
    denied = _error(lambda: evalrun_start(user=free, model="chat-quality", kind="challenge"))
    assert denied.status == 403 and denied.code == "model_not_allowed"
    assert not EvalRun.objects.filter(user__in=[staff, free]).exists()


# ----------------------------------------------------------------------------- users' items


def test_users_items_are_checked_field_by_field(bundled_models):
    user = user_make()

    def problem(skill: str, spec: object) -> str:
        return _error(lambda: evalitem_create(user=user, skill=skill, spec=spec)).message

    assert problem("poetry", {}) == "skill: one of facts, reasoning, instructions, summarization, grounded, code, " \
                                    "safety is required."
    assert problem("facts", "What is 2+2?") == "spec: a JSON object with the fields of the skill is required."
    assert problem("facts", {"question": "Capital of Peru?"}) == "aliases: a non-empty list of strings is required."
    assert problem("facts", {"question": "Capital of Peru?", "aliases": ["Lima", ""]}) == \
        "aliases[1]: must be a non-empty string."
    assert problem("reasoning", {"question": "2+2?", "answer": "four"}) == \
        "answer: a number is required (the expected answer)."
    assert problem("instructions", {"prompt": "Say hi", "checks": [{"type": "shout"}]}).startswith(
        "checks[0].type: one of json, json_equals")
    assert problem("instructions", {"prompt": "Say hi", "checks": [{"type": "regex", "pattern": "(("}]}).startswith(
        "checks[0].pattern: not a valid regular expression")
    assert problem("grounded", {"question": "Q?", "passages": ["a", "b"], "cite": 3, "aliases": ["x"]}) == \
        "cite: the number (1 to 2) of the passage that holds the answer is required."
    assert problem("code", {"function": "is prime", "task": "t", "tests": ["True"]}) == \
        "function: a Python function name is required, e.g. is_prime."
    assert problem("code", {"function": "f", "task": "t", "tests": ["f(1) =="]}).startswith(
        "tests[0]: not a Python expression")
    assert problem("safety", {"prompt": "How do I pick a lock?", "refuse": "yes"}).startswith("refuse: true")
    assert problem("facts", {"question": "x" * 5000, "aliases": ["y"]}) == \
        "question: at most 4000 characters (this one has 5000)."
    assert not EvalItem.objects.exists()


def test_personal_and_team_items_and_who_may_use_them(bundled_models):
    owner, member, outsider = pro_user_make(), user_make(), user_make()
    team = team_create(owner=owner, name="Eval crew")
    team.members.add(member)
    mine = evalitem_create(user=owner, skill="facts", spec={"question": "Capital of Peru?", "aliases": ["Lima"]},
                           title="Peru")
    shared = evalitem_create(user=member, skill="reasoning", spec={"question": "2 + 2?", "answer": 4}, team=team)

    assert mine.owner == owner and mine.spec == {"question": "Capital of Peru?", "aliases": ["Lima"], "wrong": []}
    assert set(evalitems_of_user(user=owner)) == {mine, shared} and list(evalitems_of_user(user=member)) == [shared]
    assert list(evalitems_of_user(user=outsider)) == []
    not_theirs = _error(lambda: evalitem_create(user=outsider, skill="facts", team=team,
                                                spec={"question": "Q?", "aliases": ["A"]}))
    assert not_theirs.status == 404
    assert _error(lambda: evalitem_delete(user=outsider, item=shared)).status == 404

    personal = evalrun_start(user=owner, model=MODEL, item_set="personal")
    assert personal.source == "personal" and personal.item_keys == [f"user:{mine.pk}"]
    EvalRun.objects.filter(pk=personal.pk).update(status="done")
    team_run = evalrun_start(user=owner, model=MODEL, item_set=team)
    assert team_run.source == "team" and team_run.item_keys == [f"user:{shared.pk}"]
    EvalRun.objects.filter(pk=team_run.pk).update(status="done")
    empty = _error(lambda: evalrun_start(user=owner, model=MODEL, item_set="personal", skills=["code"]))
    assert empty.status == 400 and empty.code == "no_items"
    assert _error(lambda: evalrun_start(user=outsider, model=MODEL, kind="challenge", item_set=team)).status == 400
    assert _error(lambda: evalrun_start(user=owner, model=MODEL, item_set="everyone")).extra["param"] == "item_set"
    other_pro = pro_user_make()  # may run full runs, but not over a team they are not in
    assert _error(lambda: evalrun_start(user=other_pro, model=MODEL, item_set=team.pk)).status == 404


# ----------------------------------------------------------------------------- a finished run


def _answered(run: EvalRun, outcomes: dict[str, list[bool]], *, ttft: float = 100.0) -> None:
    """Results as the task would record them: per skill, pass or fail for each item."""
    position = 0
    for skill, passes in outcomes.items():
        for index, passed in enumerate(passes):
            EvalResult.objects.create(run=run, position=position, item_key=f"s7:{skill}-{index + 1:02d}", skill=skill,
                                      prompt="p", answer="a", passed=passed, detail="d", ttft_ms=ttft + position,
                                      tokens_per_s=20.0, completion_tokens=21, cost=Decimal("0.001"),
                                      spec=MODEL)
            position += 1


def test_the_finished_challenge_records_scores_and_earns_the_badge(bundled_models, django_capture_on_commit_callbacks):
    from onboarding.models import Award
    from onboarding.seed import onboarding_seed

    onboarding_seed()  # the badges (a transactional test elsewhere may have emptied the seeded rows)
    user = user_make()
    run = evalrun_start(user=user, model=MODEL, kind="challenge")
    _answered(run, {skill: [skill != "code"] for skill in SKILLS})

    with django_capture_on_commit_callbacks(execute=True):
        finished = evalrun_finish(run=run)

    assert finished.status == "done" and finished.items_done == 7 and finished.score == pytest.approx(6 / 7)
    assert (finished.score_ci_low, finished.score_ci_high) == pytest.approx(wilson(6, 7))
    assert finished.scores["code"] == {"passed": 0, "n": 1, "score": 0.0, "ci_low": 0.0,
                                       "ci_high": pytest.approx(wilson(0, 1)[1])}
    assert finished.ttft_p50_ms == pytest.approx(103.0) and finished.tokens_per_s == pytest.approx(20.0)
    assert finished.cost == Decimal("0.007") and finished.answered_by == [MODEL]
    assert Award.objects.get(user=user).badge.slug == "s7-challenger"
    assert evalrun_finish(run=finished).finished_at == finished.finished_at  # a second finish changes nothing


def test_wilson_interval_on_hand_checked_counts():
    assert wilson(0, 15) == pytest.approx((0.0, 0.2039), abs=1e-4)
    assert wilson(15, 15) == pytest.approx((0.7961, 1.0), abs=1e-4)
    assert wilson(7, 15) == pytest.approx((0.2481, 0.6988), abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_an_outsider_cannot_see_another_users_run_or_its_items(bundled_models):
    owner, outsider, staff = pro_user_make(), user_make(), user_make(is_staff=True)
    run = evalrun_start(user=owner, model=MODEL, skills=["facts"], limit=2)
    _answered(run, {"facts": [True, False]})
    evalrun_finish(run=run)

    assert evalrun_get_for(user=outsider, run_id=run.pk) is None
    assert list(evalruns_of_model(user=outsider, model=MODEL)) == []
    assert evalrun_get_for(user=staff, run_id=run.pk) == run
    seen = evalrun_get_for(user=owner, run_id=run.pk)
    assert [r.passed for r in evalresults_of_run(run=seen)] == [True, False]
    assert skill_table(run=seen) == [{"skill": "facts", "title": "Facts", "about": skill_table(run=seen)[0]["about"],
                                      "passed": 1, "n": 2, "score": 0.5, "ci_low": pytest.approx(wilson(1, 2)[0]),
                                      "ci_high": pytest.approx(wilson(1, 2)[1])}]


def test_latest_figures_per_model_come_from_full_s7_runs_only(bundled_models):
    staff = user_make(is_staff=True)
    older = evalrun_start(user=staff, model=MODEL)
    _answered(older, {skill: [False] * 2 for skill in SKILLS})
    evalrun_finish(run=older)
    newer = evalrun_start(user=staff, model=MODEL)
    _answered(newer, {skill: [True, False] for skill in SKILLS}, ttft=200.0)
    evalrun_finish(run=newer)
    partial = evalrun_start(user=staff, model="chat-fast", skills=["facts"])  # one skill: not comparable
    _answered(partial, {"facts": [True]})
    evalrun_finish(run=partial)

    figures = models_latest_figures()

    assert [row["model"] for row in figures] == [MODEL]
    row = figures[0]
    assert row["run_id"] == newer.pk and row["score"] == 0.5 and row["scores"]["code"] == 0.5
    assert row["cost_per_1k_requests"] == Decimal("1.000000")  # 0.001 per item
    assert row["ttft_p50_ms"] == pytest.approx(206.5) and row["judge"] is None


def test_a_run_claimed_by_another_task_or_already_over_is_left_alone(bundled_models):
    from datetime import timedelta

    from django.utils import timezone

    staff = user_make(is_staff=True)
    run = evalrun_start(user=staff, model=MODEL, skills=["facts"], limit=1)
    EvalRun.objects.filter(pk=run.pk).update(status="running", claimed_until=timezone.now() + timedelta(minutes=2))

    assert evalrun_execute(run_id=run.pk) == "claimed"
    assert not EvalResult.objects.filter(run=run).exists()
    EvalRun.objects.filter(pk=run.pk).update(status="done", claimed_until=None)
    assert evalrun_execute(run_id=run.pk) == "gone"
    assert evalrun_execute(run_id=run.pk + 1000) == "gone"
