"""The welcome screen, the badges page, and the tour's operations.

The tour endpoints are the web app's own (session and CSRF, like the forms), not part of the
API that keys reach: each one does one operation and answers with the tour's state as JSON
(`Accept: application/json`, what tour.js sends) or, for a plain form post, redirects back.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from accounts.selectors import memberships_of_user
from onboarding import selectors, services

MAX_PROMPT_CHARS = 2000


@login_required
def welcome(request: HttpRequest) -> HttpResponse:
    return render(request, "onboarding/welcome.html", {
        "stats": selectors.welcome_stats(user=request.user),
        "prompts": selectors.SUGGESTED_PROMPTS,
        "tour": selectors.tour_state(user=request.user),
        "memberships": list(memberships_of_user(user=request.user)),
        "badges": selectors.badges_with_awards(user=request.user),
    })


@login_required
@require_POST
def welcome_chat(request: HttpRequest) -> HttpResponse:
    """Start a conversation with the first assistant (General) and open it, the prompt filled in."""
    from chat.selectors import assistants_for_user
    from chat.services import conversation_create

    prompt = request.POST.get("prompt", "")[:MAX_PROMPT_CHARS].strip()
    assistants = assistants_for_user(user=request.user)
    assistant = assistants.filter(slug="general").first() or assistants.first()
    if assistant is None:
        raise Http404("No assistant is available; ask the operator to add one.")
    conversation = conversation_create(user=request.user, assistant=assistant)
    url = reverse("conversation", args=[conversation.pk])
    if prompt:
        url += "?" + urlencode({"prompt": prompt})
    if request.POST.get("voice"):
        url += "#talk"
    return redirect(url)


@login_required
@require_GET
def last_chat(request: HttpRequest) -> HttpResponse:
    """Where "Try a chat" sends the user: their latest conversation, or the assistants to start one."""
    from chat.selectors import conversation_latest

    conversation = conversation_latest(user=request.user)
    return redirect(reverse("conversation", args=[conversation.pk]) if conversation else reverse("assistants"))


@login_required
def badges_page(request: HttpRequest) -> HttpResponse:
    return render(request, "onboarding/badges.html", {"badges": selectors.badges_with_awards(user=request.user)})


@login_required
@require_GET
def awards_unseen_view(request: HttpRequest) -> HttpResponse:
    """Awards not toasted yet. A page asks when its live socket opens: an award pushed between the
    page's render and the socket's subscription would otherwise wait for the next page."""
    awards = selectors.awards_unseen(user=request.user)[:20]
    return JsonResponse({"unseen_awards": [selectors.award_toast(award) for award in awards]})


@login_required
@require_POST
def awards_seen(request: HttpRequest) -> HttpResponse:
    try:
        ids = [int(i) for i in json.loads(request.body or b"{}").get("ids", [])][:100]
    except (ValueError, TypeError, AttributeError):
        return JsonResponse({"error": {"message": "Send {\"ids\": [award ids]}."}}, status=400)
    return JsonResponse({"marked": services.awards_mark_seen(user=request.user, award_ids=ids)})


# ------------------------------------------------------------------------------ the tour


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _tour_response(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(selectors.tour_state(user=request.user))
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = reverse("tour_continue")
    return redirect(target)


@login_required
@require_GET
def tour_state_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse(selectors.tour_state(user=request.user))


@login_required
@require_GET
def tour_continue(request: HttpRequest) -> HttpResponse:
    """The page of the current step (the ring's link), or the welcome screen when there is none."""
    state = selectors.tour_state(user=request.user)
    step = next((s for s in state["steps"] if s["slug"] == state["current"]), None)
    return redirect(step["url"] if step and state["state"] == "active" else reverse("app_home"))


def _operation(service):
    @login_required
    @require_POST
    def view(request: HttpRequest) -> HttpResponse:
        service(user=request.user)
        return _tour_response(request)

    view.__name__ = f"{service.__name__}_view"
    return view


tour_start_view = _operation(services.tour_start)
tour_pause_view = _operation(services.tour_pause)
tour_resume_view = _operation(services.tour_resume)
tour_skip_view = _operation(services.tour_skip)
tour_replay_view = _operation(services.tour_replay)


@login_required
@require_POST
def tour_next_view(request: HttpRequest) -> HttpResponse:
    step = request.POST.get("step", "")
    if not step:
        return JsonResponse({"error": {"code": "step_required",
                                       "message": "Say which step you pressed Next on (`step`)."}}, status=400)
    services.tour_next(user=request.user, step_slug=step[:40])
    return _tour_response(request)
