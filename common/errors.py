from __future__ import annotations


class ApplicationError(Exception):
    """A rule of the domain was broken; `message` is safe to show to the user as it is."""

    def __init__(self, message: str, *, code: str = "invalid", status: int = 400, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.extra = extra or {}


def plan_limit_error(*, plan: object, limit: str, label: str, used: int, asked: int = 1) -> ApplicationError:
    """A plan's capacity is reached (documents, megabytes, API keys, tokens per reply): a 402 that names the
    limit, the use and what lifts it. `plan` has the Plan fields, `plan_name`, `upgrade` and `upgrade_url`
    (billing.selectors.Entitlements). Time-window limits are inference.quotas' 429s with the same code."""
    allowed = int(getattr(plan, limit))
    upgrade = getattr(plan, "upgrade", None)
    lift = ""
    if upgrade is not None and int(getattr(upgrade, limit)) > allowed:
        lift = f" {upgrade.plan_name} includes {int(getattr(upgrade, limit)):,}: upgrade at {plan.upgrade_url}."
    return ApplicationError(
        f"Your {plan.plan_name} plan includes {allowed:,} {label}, and this would make {used + asked:,}.{lift}",
        code="plan_limit", status=402,
        extra={"limit": limit, "allowed": allowed, "used": used, "resets_at": None, "plan": plan.plan,
               "upgrade_url": plan.upgrade_url if upgrade is not None else "",
               "upgrade_plan": getattr(upgrade, "plan", None)},
    )
