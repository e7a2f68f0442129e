"""Writes for users, teams and memberships."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.text import slugify

from accounts.apikeys import APIKEY_LIMIT_MAX, SCOPES, apikey_generate, apikey_hash, scopes_offered
from accounts.models import ApiKey, Membership, Team, User
from accounts.selectors import APIKEYS
from common.errors import ApplicationError, plan_limit_error
from common.plans import plan_of
from onboarding.services import Event, event_record


def _unique_slug(base: str) -> str:
    root = slugify(base)[:100] or "team"
    slug = root
    while Team.objects.filter(slug=slug).exists():
        slug = f"{root}-{get_random_string(6, 'abcdefghijklmnopqrstuvwxyz0123456789')}"
    return slug


@transaction.atomic
def user_create(
    *, email: str, password: str | None = None, name: str = "", is_staff: bool = False,
    is_superuser: bool = False, is_active: bool = True,
) -> User:
    """Create a user and their personal team."""
    email = User.objects.normalize_email(email).strip()
    if not email:
        raise ApplicationError("An email address is required.", code="email_required")
    if User.objects.filter(email__iexact=email).exists():
        raise ApplicationError("A user with this email address already exists.", code="email_taken", status=409)
    user = User(email=email, name=name, is_staff=is_staff, is_superuser=is_superuser, is_active=is_active)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean(exclude=["password"])
    user.save()
    team_create_personal(user=user)
    event_record(user_id=user.pk, name=Event.SIGNED_UP)
    return user


@transaction.atomic
def team_create_personal(*, user: User) -> Team:
    """The user's own team, owned by them. Safe to call twice."""
    existing = Team.objects.filter(created_by=user, is_personal=True).first()
    if existing:
        return existing
    try:
        with transaction.atomic():
            team = Team.objects.create(
                name=f"{user.display_name}'s team", slug=_unique_slug(user.display_name),
                is_personal=True, created_by=user,
            )
    except IntegrityError:  # a concurrent call won the race; use its team
        return Team.objects.get(created_by=user, is_personal=True)
    Membership.objects.create(team=team, user=user, role=Membership.Role.OWNER)
    return team


@transaction.atomic
def team_create(*, name: str, owner: User) -> Team:
    name = name.strip()
    if not name:
        raise ApplicationError("A team needs a name.", code="name_required")
    team = Team.objects.create(name=name, slug=_unique_slug(name), created_by=owner)
    Membership.objects.create(team=team, user=owner, role=Membership.Role.OWNER)
    return team


@transaction.atomic
def membership_add(*, team: Team, user: User, role: str = Membership.Role.MEMBER) -> Membership:
    if role not in Membership.Role.values:
        raise ApplicationError(f"Unknown role {role!r}; use one of {', '.join(Membership.Role.values)}.")
    membership, created = Membership.objects.get_or_create(team=team, user=user, defaults={"role": role})
    if not created and membership.role != role:
        Membership.objects.filter(pk=membership.pk).update(role=role)
        membership.role = role
    return membership


@transaction.atomic
def user_email_verify(*, user: User) -> None:
    """Mark the user's address as verified and primary (for operator-created accounts)."""
    from allauth.account.models import EmailAddress

    EmailAddress.objects.update_or_create(
        user=user, email=user.email, defaults={"verified": True, "primary": True}
    )
    event_record(user_id=user.pk, name=Event.EMAIL_VERIFIED)


@transaction.atomic
def apikey_create(
    *, user: User, name: str, scopes: list[str] | None = None, rpm_limit: int | None = None,
    tokens_per_day_limit: int | None = None, enforce_plan: bool = True,
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the plaintext key, which is never stored. A user's plan caps their
    active keys; operators' tools (`manage.py apikey_create`, the benches) pass `enforce_plan=False`."""
    name = name.strip() or "API key"
    scopes = list(scopes_offered(is_staff=user.is_staff)) if scopes is None else scopes
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ApplicationError(f"Unknown scope(s) {', '.join(unknown)}; use {', '.join(SCOPES)}.")
    for value, label in ((rpm_limit, "requests per minute"), (tokens_per_day_limit, "tokens per day")):
        if value is not None and not 1 <= value <= APIKEY_LIMIT_MAX:
            raise ApplicationError(f"A key's limit of {label} must be from 1 to {APIKEY_LIMIT_MAX:,}, or none.",
                                   code="invalid_limit")
    if enforce_plan:
        _apikey_plan_check(user=user, rpm_limit=rpm_limit, tokens_per_day_limit=tokens_per_day_limit)
    key, prefix = apikey_generate()
    api_key = ApiKey.objects.create(
        user=user, name=name[:100], prefix=prefix, key_hash=apikey_hash(key), scopes=scopes,
        rpm_limit=rpm_limit, tokens_per_day_limit=tokens_per_day_limit,
    )
    event_record(user_id=user.pk, name=Event.API_KEY_CREATED)
    return api_key, key


def _apikey_plan_check(*, user: User, rpm_limit: int | None, tokens_per_day_limit: int | None) -> None:
    plan = plan_of(user)
    if plan is None:
        return
    # A key's limit narrows the user's; one above the plan's would never apply, so say so instead of
    # storing a number that reads like a promise.
    for value, allowed, label in ((rpm_limit, plan.requests_per_minute, "requests per minute"),
                                  (tokens_per_day_limit, plan.tokens_per_day, "tokens per day")):
        if value is not None and value > allowed:
            raise ApplicationError(
                f"Your {plan.plan_name} plan allows {allowed:,} {label}, so a key can't have {value:,}. "
                f"Enter at most {allowed:,}, or leave it empty to use the plan's limit.", code="invalid_limit")
    # The user's row lock makes two tabs creating keys at once count one after the other.
    User.objects.select_for_update().filter(pk=user.pk).first()
    active = ApiKey.objects.filter(user=user, revoked_at__isnull=True).count()
    if active >= plan.api_keys:
        raise plan_limit_error(plan=plan, limit="api_keys", label="API keys", used=active)


def apikey_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key; revoking twice keeps the first revocation time. Every process refuses it from the
    commit on (their copies of the keys are marked changed)."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    APIKEYS.changed()
    api_key.refresh_from_db(fields=["revoked_at"])
    return api_key


def apikey_touch(*, api_key: ApiKey) -> None:
    """Record use, at most once a minute per key so busy keys don't write on every request (nor query:
    the key was just read with its last use)."""
    now = timezone.now()
    if api_key.last_used_at is not None and api_key.last_used_at > now - timezone.timedelta(minutes=1):
        return
    touched = ApiKey.objects.filter(pk=api_key.pk).exclude(
        last_used_at__gt=now - timezone.timedelta(minutes=1)).update(last_used_at=now)
    # The process's shared copy of the key (accounts.selectors) now knows, so the next minute's requests
    # neither write nor query.
    api_key.last_used_at = now
    if touched:
        event_record(user_id=api_key.user_id, name=Event.API_KEY_USED)
