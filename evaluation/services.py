"""Writes for S-7: users' items, starting a run, and running it (the Celery task calls `evalrun_execute`).

A run, in order:
1. `evalrun_start` checks who may run what, fixes the items (their keys, in order) on the row, and queues the
   task once the row is committed;
2. the task claims the run with a guarded UPDATE (`claimed_until`, a lease renewed per item), so a second
   delivery of the task finds it claimed and waits for the lease instead of asking the items twice;
3. each item goes through inference's one face (`chat_complete` with the run's user as the Caller), so plans,
   quotas and the usage ledger apply to it as to any request; the result row is unique per (run, item), so
   an item answered before a crash is not asked again;
4. after every item a progress event goes to the user's notifications socket (group `user.<id>`, event
   `evaluation.run`); a batch stops after BATCH_SECONDS and the task queues its own continuation, so no
   task nears Celery's time limit however slow the model;
5. the last item's batch writes the run's figures (evalrun_finish) and, for a challenge, tells onboarding.
"""

from __future__ import annotations

import logging
import random
import re
import socket
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal

from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from common.errors import ApplicationError
from common.notifications import user_notify
from evaluation.grading import grade
from evaluation.models import EvalItem, EvalResult, EvalRun
from evaluation.s7 import (
    SKILLS,
    SYSTEM_PROMPT,
    Item,
    item_for_user_spec,
    item_spec_clean,
    s7_item,
    s7_items,
    skills_clean,
)
from evaluation.scoring import score_of, speed_of
from evaluation.selectors import evalrun_may_run_full

logger = logging.getLogger(__name__)

PROGRESS_EVENT = "evaluation.run"
CHALLENGE_NAME = "s7-challenge"
BATCH_SECONDS = 240.0  # one task's share of a run; the continuation picks up the rest
CLAIM_SECONDS = 180  # a claim not renewed for this long (a dead task) can be taken over
RATE_LIMIT_WAIT_MAX = 65  # a per-minute limit is waited out; a daily one stops the run
ERRORS_IN_A_ROW_MAX = 3  # the model is down: stop rather than fail every remaining item
JUDGE_SYSTEM = ("You grade answers. Given a task and an answer, rate how correct, complete and well-formed the "
                "answer is from 1 (useless) to 5 (perfect). Reply with 'Score: N' only.")


# ----------------------------------------------------------------------------- users' items


def _team_of(*, user, team) -> object:
    from accounts.selectors import team_get_for

    found = team_get_for(user=user, team_id=getattr(team, "pk", team))
    if found is None:
        raise ApplicationError("No such team among yours.", code="team_not_found", status=404)
    return found


@transaction.atomic
def evalitem_create(*, user, skill: str, spec: object, title: str = "", team=None) -> EvalItem:
    """An item in the user's personal set, or in `team`'s (the user must belong to it). 400s name the field."""
    if not isinstance(title, str) or len(title) > 120:
        raise ApplicationError("title: at most 120 characters.", code="invalid_item", status=400,
                               extra={"param": "title"})
    clean = item_spec_clean(skill=skill, spec=spec)
    owner = None if team is not None else user
    team = _team_of(user=user, team=team) if team is not None else None
    return EvalItem.objects.create(owner=owner, team=team, created_by=user, skill=skill, spec=clean,
                                   title=title.strip())


@transaction.atomic
def evalitem_delete(*, user, item: EvalItem) -> None:
    """The owner deletes a personal item; any member a team's. Past runs keep their copy of the prompt."""
    if item.owner_id != user.pk and (item.team_id is None or _team_of(user=user, team=item.team_id) is None):
        raise ApplicationError("No such item among yours.", code="item_not_found", status=404)
    item.delete()


# ----------------------------------------------------------------------------- starting a run


def _model_check(*, user, model: str, field: str) -> str:
    """The model or route, if it is a chat model the user may use: 404/400/403 otherwise, before anything runs."""
    from inference.selectors import models_usable, route_resolve, routes_usable
    from inference.services import Caller

    if not isinstance(model, str) or not model.strip():
        raise ApplicationError(f"{field}: name a chat model or route.", code="invalid", status=400,
                               extra={"param": field})
    model = model.strip()
    route_resolve(model=model, task="chat")
    caller = Caller(user=user)
    usable = {spec.name for spec in models_usable(caller=caller, task="chat")}
    usable |= {route.alias for route in routes_usable(caller=caller, task="chat")}
    if model not in usable:
        raise ApplicationError(f"You may not use `{model}` on your plan, so it cannot be evaluated for you.",
                               code="model_not_allowed", status=403, extra={"param": field})
    return model


def _items_chosen(*, user, kind: str, skills: list[str] | None, item_set, limit: int | None
                  ) -> tuple[list[Item], str, object]:
    """(items, source, team) for a new run."""
    if kind == EvalRun.Kind.CHALLENGE:
        if item_set is not None:
            raise ApplicationError("The S-7 challenge uses S-7's own items; leave item_set out.",
                                   code="invalid", status=400, extra={"param": "item_set"})
        # One item per skill, picked at random so a challenge taken twice asks different things.
        chooser = random.Random()
        items = [chooser.choice(s7_items(skills=[skill])) for skill in SKILLS]
        return items, EvalRun.Source.S7, None
    if item_set is None:
        items = s7_items(skills=skills, limit=limit)
        return items, EvalRun.Source.S7, None
    if item_set == "personal":
        rows, source, team = EvalItem.objects.filter(owner=user), EvalRun.Source.PERSONAL, None
    elif isinstance(item_set, (str, bool)) or not isinstance(getattr(item_set, "pk", item_set), int):
        raise ApplicationError('item_set: "personal", or the id of one of your teams.', code="invalid", status=400,
                               extra={"param": "item_set"})
    else:
        team = _team_of(user=user, team=item_set)
        rows, source = EvalItem.objects.filter(team=team), EvalRun.Source.TEAM
    items = [item_for_user_spec(key=row.key, skill=row.skill, spec=row.spec)
             for row in rows.filter(skill__in=skills_clean(skills)).order_by("skill", "id")]
    if limit is not None:
        taken: Counter[str] = Counter()
        items = [item for item in items if (taken.update([item.skill]) or taken[item.skill] <= limit)]
    if not items:
        raise ApplicationError("That item set has no items for the skills chosen; add some first.",
                               code="no_items", status=400, extra={"param": "item_set"})
    return items, source, team


@transaction.atomic
def evalrun_start(*, user, model: str, skills: list[str] | None = None, kind: str = "full", item_set=None,
                  judge_model: str = "", limit: int | None = None, enqueue: bool = True) -> EvalRun:
    """Queue an S-7 run of `model` (a model or route) for `user`.

    Who may run what: staff anything; Pro users full runs within their plan's limits (every item is a normal
    request against their quota); everyone else the 7-item challenge only. `item_set`: None for S-7,
    "personal" for the user's own items, or a team (or its id) they belong to. `judge_model` (optional, off by
    default) adds a rubric score per item, labelled judge. `limit` caps the items per skill (bench, smoke runs).
    `enqueue=False` leaves the run for the caller to execute in its own process (bench_eval).
    """
    from onboarding.services import event_record

    if kind not in EvalRun.Kind.values:
        raise ApplicationError(f"kind: one of {', '.join(EvalRun.Kind.values)}.", code="invalid", status=400,
                               extra={"param": "kind"})
    if kind == EvalRun.Kind.FULL and not evalrun_may_run_full(user=user):
        raise ApplicationError(
            "Full S-7 runs are for Pro users and staff. Take the 7-item S-7 challenge instead, or upgrade.",
            code="evaluation_not_in_plan", status=403)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ApplicationError("limit: a whole number of items per skill, at least 1.", code="invalid", status=400,
                               extra={"param": "limit"})
    if skills is not None and (not isinstance(skills, list) or not all(isinstance(s, str) for s in skills)):
        raise ApplicationError("skills: a list of skill names.", code="invalid", status=400, extra={"param": "skills"})
    model = _model_check(user=user, model=model, field="model")
    if judge_model:
        judge_model = _model_check(user=user, model=judge_model, field="judge_model")
    items, source, team = _items_chosen(user=user, kind=kind, skills=skills, item_set=item_set, limit=limit)
    if not getattr(user, "is_staff", False):
        # One run at a time per user: every item is a model request, and a second run would only queue behind.
        busy = (EvalRun.objects.select_for_update().filter(user=user, status__in=[EvalRun.Status.QUEUED,
                                                                                   EvalRun.Status.RUNNING]).first())
        if busy is not None:
            raise ApplicationError(f"Your S-7 run #{busy.pk} of {busy.model} is still going; wait for it to finish.",
                                   code="evaluation_busy", status=409, extra={"run_id": busy.pk})
    run = EvalRun.objects.create(
        user=user, model=model, kind=kind, source=source, team=team, judge_model=judge_model or "",
        skills=sorted({item.skill for item in items}, key=SKILLS.index), item_keys=[item.key for item in items],
        items_total=len(items))
    event_record(user_id=user.pk, name="s7_run", data={"kind": kind, "items": len(items)})
    if enqueue:
        transaction.on_commit(lambda: evalrun_enqueue(run_id=run.pk))
    return run


def evalrun_enqueue(*, run_id: int, countdown: float = 0) -> None:
    from evaluation.tasks import evalrun_execute_task

    evalrun_execute_task.apply_async(args=[run_id], queue="default", countdown=countdown)


# ----------------------------------------------------------------------------- running it


def _claim(run_id: int) -> bool:
    now = timezone.now()
    claimed = EvalRun.objects.filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now), pk=run_id,
        status__in=[EvalRun.Status.QUEUED, EvalRun.Status.RUNNING],
    ).update(status=EvalRun.Status.RUNNING, claimed_until=now + timedelta(seconds=CLAIM_SECONDS), updated_at=now)
    if claimed:
        EvalRun.objects.filter(pk=run_id, started_at__isnull=True).update(started_at=now)
    return bool(claimed)


def _item_of(key: str) -> Item | None:
    if key.startswith("s7:"):
        return s7_item(key)
    row = EvalItem.objects.filter(pk=int(key.removeprefix("user:"))).first()
    return item_for_user_spec(key=key, skill=row.skill, spec=row.spec) if row is not None else None


def evalrun_execute(*, run_id: int, budget_seconds: float = BATCH_SECONDS) -> str:
    """Ask and grade the run's remaining items for up to `budget_seconds`. Returns "done", "failed", "more"
    (queue a continuation), "claimed" (another task holds it; try after the lease) or "gone"."""
    run = EvalRun.objects.select_related("user").filter(pk=run_id).first()
    if run is None or run.status in (EvalRun.Status.DONE, EvalRun.Status.FAILED):
        return "gone"
    if not _claim(run_id):
        return "claimed"
    started = time.monotonic()
    answered = set(EvalResult.objects.filter(run=run).values_list("item_key", flat=True))
    done = len(answered)
    errors_in_a_row = 0
    peak = run.peak_memory_mb
    for position, key in enumerate(run.item_keys):
        if key in answered:
            continue
        if time.monotonic() - started > budget_seconds:
            EvalRun.objects.filter(pk=run_id).update(claimed_until=None)
            return "more"
        try:
            result = _item_run(run=run, item=_item_of(key), key=key, position=position)
        except _RunStop as stop:
            evalrun_fail(run=run, error=str(stop))
            return "failed"
        except (OperationalError, InterfaceError):
            EvalRun.objects.filter(pk=run_id).update(claimed_until=None)
            raise  # the database went away: the task retries, and the next claim resumes at this item
        except Exception as exc:
            # Anything else would leave the run "running" for ever: the page shows this instead.
            logger.exception("S-7 run %s stopped at %s", run_id, key)
            evalrun_fail(run=run, error=f"Stopped at {key} by an unexpected error: {type(exc).__name__}: {exc}")
            return "failed"
        errors_in_a_row = errors_in_a_row + 1 if result.error else 0
        if errors_in_a_row >= ERRORS_IN_A_ROW_MAX:
            evalrun_fail(run=run, error=f"{ERRORS_IN_A_ROW_MAX} items in a row got no answer; the last: "
                                        f"{result.error}")
            return "failed"
        done += 1
        memory = worker_memory_mb(specs=[result.spec] if result.spec else [])
        peak = max(filter(None, [peak, memory]), default=None)
        EvalRun.objects.filter(pk=run_id).update(
            items_done=done, peak_memory_mb=peak, updated_at=timezone.now(),
            claimed_until=timezone.now() + timedelta(seconds=CLAIM_SECONDS))
        _progress(run=run, done=done, result=result)
    evalrun_finish(run=run)
    return "done"


class _RunStop(Exception):
    """The run cannot go on (a daily budget is spent, the model may no longer be used)."""


def _item_run(*, run: EvalRun, item: Item | None, key: str, position: int) -> EvalResult:
    """Ask one item (waiting out a per-minute limit), grade it, and record it once."""
    from inference.services import Caller, QuotaExceeded, chat_complete

    if item is None:  # a user's item deleted after the run started
        return _result_save(run=run, key=key, position=position, skill="", prompt="", answer="",
                            passed=False, detail="The item was deleted before it was asked.", error="deleted")
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": item.prompt}]
    reply, error = None, ""
    for _ in range(5):
        try:
            reply = chat_complete(caller=Caller(user=run.user), model=run.model, messages=messages,
                                  max_tokens=item.max_tokens, temperature=0.0, shrink_to_fit=True)
            break
        except QuotaExceeded as exc:
            if exc.retry_after > RATE_LIMIT_WAIT_MAX:
                raise _RunStop(f"Stopped: {exc.message}")
            time.sleep(max(1, exc.retry_after))
        except ApplicationError as exc:
            if exc.status == 403:
                raise _RunStop(f"Stopped: {exc.message}")
            error = exc.message
            break
    else:
        error = "The per-minute request limit kept refusing this item."
    if reply is None:
        return _result_save(run=run, key=key, position=position, skill=item.skill, prompt=item.prompt, answer="",
                            passed=False, detail=f"No answer: {error}", error=error[:500])
    answer = reply["text"]
    graded = grade(skill=item.skill, spec=item.spec, answer=answer)
    usage = reply.get("usage") or {}
    ledger = _ledger_of(reply["request_id"])
    judged = _judge(run=run, item=item, answer=answer) if run.judge_model else None
    return _result_save(
        run=run, key=key, position=position, skill=item.skill, prompt=item.prompt, answer=answer,
        passed=graded.passed, detail=graded.detail, request_id=reply["request_id"], spec=reply.get("spec", ""),
        ttft_ms=reply.get("ttft_ms"), tokens_per_s=ledger["tokens_per_s"],
        prompt_tokens=usage.get("prompt_tokens", 0), completion_tokens=usage.get("completion_tokens", 0),
        cost=ledger["cost"], judge_score=judged)


def _ledger_of(request_id: str) -> dict:
    """The request's cost over every attempt (a fallback writes one row per attempt), and the decode speed of the
    attempt that answered, from the usage ledger the worker wrote."""
    from inference.selectors import usage_records_of_request

    rows = list(usage_records_of_request(request_id=request_id).values(
        "cost", "outcome", "completion_tokens", "ttft_ms", "duration_ms"))
    cost = sum((row["cost"] for row in rows), Decimal(0))
    speed = None
    ok = [row for row in rows if row["outcome"] == "ok"]
    if ok:
        row = ok[-1]
        decode_ms = row["duration_ms"] - (row["ttft_ms"] or 0)
        if row["completion_tokens"] > 1 and decode_ms > 0:
            speed = (row["completion_tokens"] - 1) / (decode_ms / 1000)
    return {"cost": cost, "tokens_per_s": speed}


def _judge(*, run: EvalRun, item: Item, answer: str) -> float | None:
    """The judge model's 1–5 rubric rating as 0–1, or None when it gave none. Never affects pass/fail."""
    from inference.services import Caller, chat_complete

    task = f"Task:\n{item.prompt}\n\nAnswer:\n{answer}\n\nRate the answer. Reply with 'Score: N' (N from 1 to 5)."
    try:
        reply = chat_complete(caller=Caller(user=run.user), model=run.judge_model, max_tokens=12, temperature=0.0,
                              messages=[{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": task}],
                              shrink_to_fit=True)
    except ApplicationError as exc:
        logger.info("judge %s gave no score for run %s: %s", run.judge_model, run.pk, exc.message)
        return None
    match = re.search(r"score\W*([1-5])", reply["text"], re.I) or re.search(r"\b([1-5])\b", reply["text"])
    return (int(match.group(1)) - 1) / 4 if match else None


def _result_save(*, run: EvalRun, key: str, position: int, skill: str, prompt: str, answer: str, passed: bool,
                 detail: str, error: str = "", cost: Decimal = Decimal(0), **figures) -> EvalResult:
    try:
        with transaction.atomic():
            return EvalResult.objects.create(run=run, item_key=key, position=position, skill=skill, prompt=prompt,
                                             answer=answer, passed=passed, detail=detail[:500], error=error,
                                             cost=cost, **figures)
    except IntegrityError:  # a task that lost its claim mid-item recorded it first: keep that one
        return EvalResult.objects.get(run=run, item_key=key)


def _progress(*, run: EvalRun, done: int, result: EvalResult) -> None:
    user_notify(user_id=run.user_id, event=PROGRESS_EVENT, data={
        "run_id": run.pk, "status": EvalRun.Status.RUNNING, "done": done, "total": run.items_total,
        "percent": round(100 * done / run.items_total) if run.items_total else 100,
        "item": result.item_key, "skill": result.skill, "passed": result.passed})


def worker_memory_mb(*, specs: list[str]) -> float | None:
    """Resident memory of the gpu workers holding `specs` (the largest), in MB.

    A worker on this host is measured with psutil, its process and every child (llama-server runs its model in a
    child process, which the worker's own heartbeat figure leaves out); a worker elsewhere by the `rss_mb` its
    heartbeat reports (inference.runtime.ModelHost.snapshot: the worker process only).
    """
    import psutil

    from common.heartbeat import workers_alive

    here = socket.gethostname()
    figures = []
    for worker in workers_alive():
        models = worker.get("models") or {}
        if specs and not any((models.get(name) or {}).get("state") == "loaded" for name in specs):
            continue
        if not models:
            continue
        rss = None
        if worker.get("host") == here:
            try:
                process = psutil.Process(int(worker["pid"]))
                rss = sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20
            except (psutil.Error, KeyError, ValueError):
                rss = None
        if rss is None and worker.get("rss_mb") is not None:
            rss = float(worker["rss_mb"])
        if rss is not None:
            figures.append(rss)
    return round(max(figures), 1) if figures else None


@transaction.atomic
def evalrun_finish(*, run: EvalRun) -> EvalRun:
    """Write the run's figures from its results, mark it done, and tell the user (and onboarding, for a challenge)."""
    from onboarding.services import s7_challenge_finished

    run = EvalRun.objects.select_for_update().get(pk=run.pk)
    if run.status == EvalRun.Status.DONE:
        return run
    results = list(EvalResult.objects.filter(run=run).order_by("position").values(
        "skill", "passed", "ttft_ms", "tokens_per_s", "completion_tokens", "judge_score", "spec"))
    scores = {}
    for skill in SKILLS:
        graded = [r for r in results if r["skill"] == skill]
        if graded:
            scores[skill] = score_of(sum(r["passed"] for r in graded), len(graded))
    overall = score_of(sum(r["passed"] for r in results), len(results))
    judged = [r["judge_score"] for r in results if r["judge_score"] is not None]
    speed = speed_of(results)
    cost = EvalResult.objects.filter(run=run).aggregate(total=Sum("cost"))["total"] or Decimal(0)
    run.scores, run.score = scores, overall["score"]
    run.score_ci_low, run.score_ci_high = overall["ci_low"], overall["ci_high"]
    run.judge_score = sum(judged) / len(judged) if judged else None
    run.ttft_p50_ms, run.ttft_p95_ms = speed["ttft_p50_ms"], speed["ttft_p95_ms"]
    run.tokens_per_s = speed["tokens_per_s"]
    run.cost = cost
    run.answered_by = sorted({r["spec"] for r in results if r["spec"]})
    run.items_done = len(results)
    run.status, run.finished_at, run.claimed_until = EvalRun.Status.DONE, timezone.now(), None
    run.save()
    data = {"run_id": run.pk, "status": run.status, "done": run.items_done, "total": run.items_total,
            "percent": 100, "score": run.score, "scores": {k: v["score"] for k, v in scores.items()}}
    transaction.on_commit(lambda: user_notify(user_id=run.user_id, event=PROGRESS_EVENT, data=data))
    if run.kind == EvalRun.Kind.CHALLENGE:
        finished = EvalRun.objects.filter(user_id=run.user_id, kind=EvalRun.Kind.CHALLENGE,
                                          status=EvalRun.Status.DONE).count()
        user_id = run.user_id
        transaction.on_commit(lambda: s7_challenge_finished(user_id=user_id, finished=finished,
                                                            challenge=CHALLENGE_NAME))
    return run


@transaction.atomic
def evalrun_fail(*, run: EvalRun, error: str) -> EvalRun:
    """Stop the run and say why (the page shows `error`); the items answered so far are kept."""
    updated = EvalRun.objects.filter(pk=run.pk, status__in=[EvalRun.Status.QUEUED, EvalRun.Status.RUNNING]).update(
        status=EvalRun.Status.FAILED, error=error[:2000], finished_at=timezone.now(), claimed_until=None)
    run.refresh_from_db()
    if updated:
        data = {"run_id": run.pk, "status": run.status, "done": run.items_done, "total": run.items_total,
                "error": run.error}
        transaction.on_commit(lambda: user_notify(user_id=run.user_id, event=PROGRESS_EVENT, data=data))
    return run
