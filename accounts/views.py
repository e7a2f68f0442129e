from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.forms import ApiKeyCreateForm
from accounts.selectors import apikeys_of_user
from accounts.services import apikey_create, apikey_revoke
from common.errors import ApplicationError
from common.forms import form_error_message
from common.plans import plan_of

# The session key holding a new key's secret between the POST and the page that shows it once. Sessions are
# server-side rows (Django's database backend), so the secret never travels in a cookie; the GET pops it.
NEW_KEY_SESSION = "apikey_new"


@login_required
def apikeys_page(request: HttpRequest) -> HttpResponse:
    """List keys. A POST creates one and redirects (so a refresh can't create another); the next GET shows
    the secret once."""
    form = ApiKeyCreateForm(request.POST if request.method == "POST" else None, is_staff=request.user.is_staff)
    error, status = None, 200
    if request.method == "POST":
        try:
            if not form.is_valid():
                raise ApplicationError(form_error_message(form))
            data = form.cleaned_data
            api_key, secret = apikey_create(
                user=request.user, name=data["name"], scopes=data["scopes"], rpm_limit=data["rpm_limit"],
                tokens_per_day_limit=data["tokens_per_day_limit"],
            )
        except ApplicationError as exc:
            error, status = exc.message, exc.status
        else:
            request.session[NEW_KEY_SESSION] = {"id": api_key.pk, "secret": secret}
            return redirect("apikeys")
    new_key = request.session.pop(NEW_KEY_SESSION, None)
    return render(request, "accounts/api_keys.html", {
        "keys": apikeys_of_user(user=request.user), "form": form, "new_key": new_key, "error": error,
        "plan": plan_of(request.user), "base_url": request.build_absolute_uri("/v1"),
    }, status=status)


@login_required
@require_POST
def apikey_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    # Looking the key up among the caller's own makes another user's key a 404.
    api_key = get_object_or_404(apikeys_of_user(user=request.user), pk=pk)
    apikey_revoke(api_key=api_key)
    messages.success(request, f"Revoked {api_key.name} ({api_key.prefix}…). Requests with it now get 401.")
    return redirect("apikeys")
