"""Writes for teams: rename, roles, removing members and leaving.

Who may do what: owners and admins manage a team (rename, invite, change roles, remove). Only
an owner may make someone an owner or act on another owner. Nobody removes, demotes or lets
leave the last owner: a team always has one. A plain member may only leave.

Role changes and removals lock the team's memberships (`SELECT … FOR UPDATE`), so two owners
demoting each other at the same moment can't leave the team without an owner.
"""

from __future__ import annotations

from django.db import transaction

from accounts.models import Membership, Team, User
from common.errors import ApplicationError

Role = Membership.Role
MANAGERS = (Role.OWNER, Role.ADMIN)


def _membership(team: Team, user: User) -> Membership | None:
    return Membership.objects.filter(team=team, user=user).first()


def team_require_manager(*, team: Team, user: User) -> Membership:
    """The user's membership if they are an owner or admin of the team; else a 403 that says so."""
    membership = _membership(team, user)
    if membership is None:
        raise ApplicationError("No such team.", code="not_found", status=404)
    if membership.role not in MANAGERS:
        raise ApplicationError("Only the team's owners and admins can do that.", code="permission_denied",
                               status=403)
    return membership


@transaction.atomic
def team_rename(*, team: Team, by: User, name: str) -> Team:
    team_require_manager(team=team, user=by)
    name = " ".join(name.split())
    if not name:
        raise ApplicationError("A team needs a name.", code="name_required")
    if len(name) > 120:
        raise ApplicationError("Team names are at most 120 characters.", code="name_too_long")
    Team.objects.filter(pk=team.pk).update(name=name)
    team.name = name
    return team


def _locked_memberships(team: Team) -> dict[int, Membership]:
    return {m.user_id: m for m in Membership.objects.select_for_update().filter(team=team).order_by("id")}


def _owners(memberships: dict[int, Membership]) -> int:
    return sum(1 for m in memberships.values() if m.role == Role.OWNER)


@transaction.atomic
def membership_role_set(*, team: Team, by: User, user_id: int, role: str) -> Membership:
    if role not in Role.values:
        raise ApplicationError(f"Unknown role {role!r}; use one of {', '.join(Role.values)}.", code="invalid_role")
    memberships = _locked_memberships(team)
    actor, target = memberships.get(by.pk), memberships.get(user_id)
    if actor is None:
        raise ApplicationError("No such team.", code="not_found", status=404)
    if actor.role not in MANAGERS:
        raise ApplicationError("Only the team's owners and admins can change roles.", code="permission_denied",
                               status=403)
    if target is None:
        raise ApplicationError("That person is not a member of this team.", code="not_member", status=404)
    if actor.role != Role.OWNER and Role.OWNER in (role, target.role):
        raise ApplicationError("Only an owner can make someone an owner or change an owner's role.",
                               code="permission_denied", status=403)
    if target.role == Role.OWNER and role != Role.OWNER and _owners(memberships) == 1:
        raise ApplicationError("This is the team's last owner. Make someone else an owner first.",
                               code="last_owner", status=409)
    Membership.objects.filter(pk=target.pk).update(role=role)
    target.role = role
    return target


@transaction.atomic
def membership_remove(*, team: Team, by: User, user_id: int) -> None:
    """Remove someone from the team (an owner or admin does this; `team_leave` is for oneself)."""
    memberships = _locked_memberships(team)
    actor, target = memberships.get(by.pk), memberships.get(user_id)
    if actor is None:
        raise ApplicationError("No such team.", code="not_found", status=404)
    if target is None:
        raise ApplicationError("That person is not a member of this team.", code="not_member", status=404)
    if user_id == by.pk:
        return team_leave(team=team, user=by)
    if actor.role not in MANAGERS:
        raise ApplicationError("Only the team's owners and admins can remove members.", code="permission_denied",
                               status=403)
    if target.role == Role.OWNER and actor.role != Role.OWNER:
        raise ApplicationError("Only an owner can remove an owner.", code="permission_denied", status=403)
    if target.role == Role.OWNER and _owners(memberships) == 1:
        raise ApplicationError("This is the team's last owner and can't be removed.", code="last_owner",
                               status=409)
    Membership.objects.filter(pk=target.pk).delete()


@transaction.atomic
def team_leave(*, team: Team, user: User) -> None:
    memberships = _locked_memberships(team)
    membership = memberships.get(user.pk)
    if membership is None:
        raise ApplicationError("You are not a member of this team.", code="not_member", status=404)
    if membership.role == Role.OWNER and _owners(memberships) == 1:
        raise ApplicationError("You are this team's last owner, so you can't leave it. Make someone else an "
                               "owner first.", code="last_owner", status=409)
    Membership.objects.filter(pk=membership.pk).delete()
