"""Team pages: the list and creation, a team's members, roles and invitations, its usage, and the
page an invitation link opens."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.adapters import INVITATION_SESSION_KEY
from accounts.models import Membership, Team
from accounts.selectors import (
    invitation_of_team,
    invitations_of_team,
    membership_of,
    memberships_of_team,
    memberships_of_user,
    team_get_for,
)
from accounts.services import (
    invitation_accept,
    invitation_check,
    invitation_create,
    invitation_from_token,
    invitation_resend,
    invitation_revoke,
    membership_remove,
    membership_role_set,
    team_create,
    team_leave,
    team_rename,
    team_require_manager,
)
from common.errors import ApplicationError

MANAGERS = (Membership.Role.OWNER, Membership.Role.ADMIN)


def _team_or_404(request: HttpRequest, team_id: int) -> Team:
    team = team_get_for(user=request.user, team_id=team_id)
    if team is None:
        raise Http404("No such team.")
    return team


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 19 else None


def _error_page(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    return render(request, "accounts/team_error.html", {"message": exc.message}, status=exc.status)


@login_required
def teams_page(request: HttpRequest) -> HttpResponse:
    """Your teams; POST creates one. The quick invite form sends to the chosen team's invite view."""
    if request.method == "POST":
        try:
            team = team_create(name=request.POST.get("name", "")[:120], owner=request.user)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Created {team.name}. Invite people to it below.")
            return redirect("team_detail", team_id=team.pk)
        return redirect("teams")
    memberships = list(memberships_of_user(user=request.user))
    return render(request, "accounts/teams.html", {
        "memberships": memberships,
        "manageable": [m.team for m in memberships if m.role in MANAGERS],
        "roles": [(Membership.Role.MEMBER, "Member"), (Membership.Role.ADMIN, "Admin")],
    })


@login_required
def team_detail(request: HttpRequest, team_id: int) -> HttpResponse:
    team = _team_or_404(request, team_id)
    if request.method == "POST":
        try:
            team_rename(team=team, by=request.user, name=request.POST.get("name", ""))
        except ApplicationError as exc:
            if exc.status == 404:
                raise Http404(exc.message)
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Renamed the team to {team.name}.")
        return redirect("team_detail", team_id=team.pk)
    mine = membership_of(team=team, user=request.user)
    manager = mine.role in MANAGERS
    return render(request, "accounts/team_detail.html", {
        "team": team, "mine": mine, "manager": manager, "owner": mine.role == Membership.Role.OWNER,
        "memberships": memberships_of_team(team=team),
        "invitations": invitations_of_team(team=team)[:100] if manager else [],
        "roles": Membership.Role.choices,
        "invite_roles": [(Membership.Role.MEMBER, "Member"), (Membership.Role.ADMIN, "Admin")],
    })


def _after(request: HttpRequest, team: Team) -> HttpResponse:
    target = request.POST.get("next", "")
    return redirect(reverse("teams") if target == "teams" else reverse("team_detail", args=[team.pk]))


@login_required
@require_POST
def team_invite(request: HttpRequest, team_id: int) -> HttpResponse:
    team = _team_or_404(request, team_id)
    try:
        invitation = invitation_create(team=team, by=request.user, email=request.POST.get("email", "")[:254],
                                       role=request.POST.get("role", Membership.Role.MEMBER))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Invited {invitation.email}. The link in their email works for 7 days.")
    return _after(request, team)


@login_required
@require_POST
def invitation_action(request: HttpRequest, team_id: int, invitation_id: int, action: str) -> HttpResponse:
    team = _team_or_404(request, team_id)
    invitation = invitation_of_team(team=team, invitation_id=invitation_id)
    if invitation is None:
        raise Http404("No such invitation.")
    try:
        if action == "resend":
            invitation_resend(invitation=invitation, by=request.user)
            messages.success(request, f"Sent a new link to {invitation.email}; the old one no longer works.")
        else:
            invitation_revoke(invitation=invitation, by=request.user)
            messages.success(request, f"Revoked the invitation of {invitation.email}.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("team_detail", team_id=team.pk)


@login_required
@require_POST
def membership_role(request: HttpRequest, team_id: int, user_id: int) -> HttpResponse:
    team = _team_or_404(request, team_id)
    try:
        membership = membership_role_set(team=team, by=request.user, user_id=user_id,
                                         role=request.POST.get("role", ""))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{membership.user.email} is now {membership.get_role_display().lower()}.")
    return redirect("team_detail", team_id=team.pk)


@login_required
@require_POST
def membership_remove_view(request: HttpRequest, team_id: int, user_id: int) -> HttpResponse:
    team = _team_or_404(request, team_id)
    try:
        membership_remove(team=team, by=request.user, user_id=user_id)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("team_detail", team_id=team.pk)
    if user_id == request.user.pk:
        messages.success(request, f"You left {team.name}.")
        return redirect("teams")
    messages.success(request, "Removed them from the team.")
    return redirect("team_detail", team_id=team.pk)


@login_required
@require_POST
def team_leave_view(request: HttpRequest, team_id: int) -> HttpResponse:
    team = _team_or_404(request, team_id)
    try:
        team_leave(team=team, user=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("team_detail", team_id=team.pk)
    messages.success(request, f"You left {team.name}.")
    return redirect("teams")


@login_required
def team_usage(request: HttpRequest, team_id: int) -> HttpResponse:
    """What the team's members used in the last 30 days, and the team's own documents (owners and admins)."""
    from inference.selectors import usage_totals_of_users
    from knowledge.selectors import collections_of_team_with_counts

    team = _team_or_404(request, team_id)
    try:
        team_require_manager(team=team, user=request.user)
    except ApplicationError as exc:
        return _error_page(request, exc)
    memberships = list(memberships_of_team(team=team))
    usage = {row["user_id"]: row for row in usage_totals_of_users(user_ids=[m.user_id for m in memberships])}
    rows = [{"membership": m, **usage.get(m.user_id, {})} for m in memberships]
    totals = {key: sum((row.get(key) or 0) for row in rows)
              for key in ("requests", "prompt_tokens", "completion_tokens", "audio_seconds", "characters", "cost")}
    return render(request, "accounts/team_usage.html", {
        "team": team, "rows": rows, "totals": totals, "collections": collections_of_team_with_counts(team=team),
    })


def invitation_page(request: HttpRequest, token: str) -> HttpResponse:
    """What an invitation link opens. Signed in: accept with one click. Signed out: sign up (the
    address is taken as verified, since the link proves it) or log in, and joining follows."""
    try:
        invitation = invitation_from_token(token=token[:500])
    except ApplicationError as exc:
        return render(request, "accounts/invitation.html", {"error": exc.message}, status=exc.status)
    user = request.user if request.user.is_authenticated else None
    error, status = None, 200
    try:
        if request.method == "POST" and user is not None:
            membership = invitation_accept(token=token, user=user)
            messages.success(request, f"You joined {membership.team.name}.")
            return redirect("team_detail", team_id=membership.team_id)
        invitation_check(invitation=invitation, user=user)
    except ApplicationError as exc:
        error, status = exc.message, exc.status
    if user is None and error is None:
        from allauth.account.adapter import get_adapter

        request.session[INVITATION_SESSION_KEY] = token
        get_adapter(request).stash_verified_email(request, invitation.email)
    return render(request, "accounts/invitation.html", {
        "invitation": invitation, "error": error,
        "already_member": user is not None and membership_of(team=invitation.team, user=user) is not None,
    }, status=status)
