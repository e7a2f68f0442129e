from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.selectors import memberships_of_user


@login_required
def app_home(request: HttpRequest) -> HttpResponse:
    return render(request, "app/home.html", {"memberships": list(memberships_of_user(user=request.user))})
