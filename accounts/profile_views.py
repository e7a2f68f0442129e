"""The profile page: display name, avatar, time zone, email digest; badges and the tour's state."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.profile_forms import ProfileForm
from accounts.selectors import PROFILE_FIELDS, profile_missing, user_get, users_share_a_team
from accounts.services import profile_update
from common.errors import ApplicationError


@login_required
def profile_page(request: HttpRequest) -> HttpResponse:
    from onboarding.selectors import badges_with_awards, tour_state
    from onboarding.services import consent_choice, privacy_signal

    user, error = request.user, None
    if request.method == "POST":
        form = ProfileForm(request.POST, request.FILES)
        if form.is_valid():
            data = form.cleaned_data
            try:
                profile_update(
                    user=user, name=data["name"], time_zone=data["time_zone"],
                    email_digest=data["email_digest"] or None, avatar_upload=data["avatar"],
                    avatar_kind=data["avatar_kind"] or None,
                )
            except ApplicationError as exc:
                error = exc.message
            else:
                messages.success(request, "Saved your profile.")
                return redirect("profile")
        else:
            error = " ".join(f"{form.fields[name].label}: {' '.join(errs)}" for name, errs in form.errors.items())
    else:
        form = ProfileForm(initial={"name": user.name, "avatar_kind": user.avatar_kind,
                                    "time_zone": user.time_zone, "email_digest": user.email_digest})
    missing = profile_missing(user=user)
    return render(request, "accounts/profile.html", {
        "form": form, "error": error, "missing": [PROFILE_FIELDS[name] for name in missing],
        "complete_percent": round(100 * (len(PROFILE_FIELDS) - len(missing)) / len(PROFILE_FIELDS)),
        "badges": badges_with_awards(user=user), "tour": tour_state(user=user),
        "consent_choice": consent_choice(user_id=user.pk), "privacy_signal": privacy_signal(request),
    }, status=400 if error else 200)


@login_required
@require_POST
def profile_name(request: HttpRequest) -> HttpResponse:
    """The welcome screen's "What should we call you?" (first visit without a name)."""
    try:
        profile_update(user=request.user, name=request.POST.get("name", ""))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("app_home")


@login_required
@require_GET
def avatar_view(request: HttpRequest, user_id: int) -> HttpResponse:
    """A user's avatar picture, for themselves and the people they share a team with."""
    if not users_share_a_team(user=request.user, other_id=user_id):
        raise Http404("No such avatar.")
    owner = user_get(user_id=user_id)
    if owner is None or not owner.avatar or owner.avatar_kind != owner.AvatarKind.IMAGE:
        raise Http404("No such avatar.")
    try:
        handle = owner.avatar.open("rb")
    except FileNotFoundError:
        raise Http404("No such avatar.")
    response = FileResponse(handle, content_type="image/webp")
    response["Cache-Control"] = "private, max-age=3600"
    return response
