from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.forms import ApiKeyCreateForm
from accounts.selectors import apikeys_of_user, memberships_of_user
from accounts.services import apikey_create, apikey_revoke
from common.errors import ApplicationError
from common.forms import form_error_message


@login_required
def app_home(request: HttpRequest) -> HttpResponse:
    return render(request, "app/home.html", {"memberships": list(memberships_of_user(user=request.user))})


@login_required
def apikeys_page(request: HttpRequest) -> HttpResponse:
    """List keys; POST creates one and shows its secret on this response only."""
    new_key, error = None, None
    if request.method == "POST":
        form = ApiKeyCreateForm(request.POST)
        try:
            if not form.is_valid():
                raise ApplicationError(form_error_message(form))
            api_key, new_key = apikey_create(user=request.user, name=form.cleaned_data["name"])
        except ApplicationError as exc:
            error = exc.message
    return render(request, "accounts/api_keys.html", {
        "keys": apikeys_of_user(user=request.user), "new_key": new_key, "error": error,
        "base_url": request.build_absolute_uri("/v1"),
    }, status=400 if error else 200)


@login_required
@require_POST
def apikey_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    # Looking the key up among the caller's own makes another user's key a 404.
    api_key = get_object_or_404(apikeys_of_user(user=request.user), pk=pk)
    apikey_revoke(api_key=api_key)
    messages.success(request, f"Revoked {api_key.name} ({api_key.prefix}…). Requests with it now get 401.")
    return redirect("apikeys")
