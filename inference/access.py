"""Who may use which model, and what the caller's plan allows: the rules every inference call checks.

The plan comes from `PARLEY_ENTITLEMENTS` (billing.selectors.entitlements_for_user by default), so
inference runs without billing too: with the setting empty, everyone gets the `PARLEY_USER_*` limits and
every model. A model's or route's own rule says who may use it (ModelSpec/Route `access_plans`,
`access_teams`, `staff_only`); plans do not list models, so each model has exactly one rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.module_loading import import_string

from common.errors import ApplicationError
from common.plans import plan_of

if TYPE_CHECKING:
    from inference.models import ModelSpec, Route
    from inference.serving import Caller


@dataclass(frozen=True)
class PlanLimits:
    """The caller's plan as inference needs it (billing's Entitlements has the same attribute names)."""

    plan: str
    plan_name: str
    requests_per_minute: int
    tokens_per_day: int
    voice_minutes_per_day: int
    speech_characters_per_day: int
    max_tokens_per_reply: int
    upgrade: Any = None  # the same shape, for the plan that lifts the limits, or None
    upgrade_url: str = ""


def _unlimited_plan() -> PlanLimits:
    """Without a plan provider: the operator's PARLEY_USER_* limits for everyone."""
    return PlanLimits(
        plan="default", plan_name="this server's", requests_per_minute=settings.PARLEY_USER_RPM,
        tokens_per_day=settings.PARLEY_USER_TOKENS_PER_DAY,
        voice_minutes_per_day=settings.PARLEY_USER_AUDIO_SECONDS_PER_DAY // 60,
        speech_characters_per_day=settings.PARLEY_USER_SPEECH_CHARS_PER_DAY,
        max_tokens_per_reply=settings.PARLEY_USER_MAX_TOKENS_PER_REPLY,
    )


def plan_for(user: Any) -> Any:
    """The user's plan limits (billing's Entitlements), or the PARLEY_USER_* limits when plans are off."""
    return plan_of(user) or _unlimited_plan()


# ----------------------------------------------------------------------------- model access


def _team_ids(user: Any) -> set[int]:
    from accounts.selectors import team_ids_of_user

    return set(team_ids_of_user(user=user))


def rule_denies(rule: ModelSpec | Route, *, plan: str, is_staff: bool, team_ids: Callable[[], set[int]]
                ) -> str | None:
    """Why someone on `plan` (staff or not, in these teams) may not use `rule`'s model or route; None if they may.
    `team_ids` is asked only when the rule names teams."""
    if is_staff:
        return None
    if rule.staff_only:
        return "staff"
    plans = list(rule.access_plans or [])
    rule_teams = {team.pk for team in rule.access_teams.all()}
    if not plans and not rule_teams:
        return None
    if plans and plan in plans:
        return None
    if rule_teams and rule_teams & team_ids():
        return None
    return "plan"


def denied(caller: Caller, rule: ModelSpec | Route) -> str | None:
    """Why `caller` may not use the model or route, or None when they may (see the module docstring)."""
    user = caller.user
    if user is None:
        return None
    return rule_denies(rule, plan=caller.plan.plan, is_staff=bool(getattr(user, "is_staff", False)),
                       team_ids=lambda: _team_ids(user))


def access_by_plan(*, caller: Caller, specs: list[ModelSpec]) -> list[ModelSpec]:
    """The default policy: the models of the route the caller's plan, teams or staff status allow."""
    return [spec for spec in specs if denied(caller, spec) is None]


def access_any_enabled(*, caller: Caller, specs: list[ModelSpec]) -> list[ModelSpec]:
    """Every enabled model is open to every signed-in user (PARLEY_MODEL_ACCESS_POLICY to opt out of plans)."""
    return specs


@cache
def _policy():
    return import_string(settings.PARLEY_MODEL_ACCESS_POLICY)


def plans_named(slugs: list[str]) -> str:
    """'Parley Pro' for ['pro'], from the plan provider's names when it has them."""
    names = []
    for slug in slugs:
        name = slug
        try:
            from billing.selectors import plan_name

            name = plan_name(slug=slug) or slug
        except ImportError:
            pass
        names.append(name)
    return " or ".join(names) if names else "another plan"


def not_allowed(caller: Caller, name: str, rule: ModelSpec | Route, reason: str) -> ApplicationError:
    """A 403 that says which plan includes the model, and where to get it."""
    if reason == "staff":
        return ApplicationError(f"`{name}` is for this server's staff only. GET /v1/models lists the models you "
                                "can use.", code="model_not_allowed", status=403)
    plans = list(rule.access_plans or [])
    upgrade_url = getattr(caller.plan, "upgrade_url", "") or ""
    where = f" Upgrade at {upgrade_url}." if upgrade_url and plans else ""
    return ApplicationError(
        f"`{name}` is included in {plans_named(plans)}, not in your {caller.plan.plan_name} plan.{where}",
        code="model_not_in_plan", status=403,
        extra={"plans": plans, "upgrade_url": upgrade_url if plans else ""},
    )


def specs_allowed(*, caller: Caller, model: str, route: Route | None, specs: list[ModelSpec]) -> list[ModelSpec]:
    """The route's specs the caller may use, or a 403 naming the plan that includes the route or model."""
    if route is not None and (reason := denied(caller, route)):
        raise not_allowed(caller, model, route, reason)
    allowed = _policy()(caller=caller, specs=specs)
    if not allowed:
        first = specs[0]
        raise not_allowed(caller, model, first, denied(caller, first) or "plan")
    return list(allowed)
