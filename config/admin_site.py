"""Django admin behind allauth's log-in and a second factor.

Admin had its own log-in form: no allauth rate limits, no TOTP. Here admin has no form of its
own: its log-in sends people to allauth's, and a staff member reaches admin only from a session
that passed an authenticator code (TOTP or a recovery code). Staff without an authenticator are
sent to set one up; a session that signed in before it existed is asked for a code once.
`python manage.py dev_superuser` prints these steps for the local superuser.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.apps import AdminConfig
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from common.redirects import redirect_target


def staff_second_factor_passed(request: HttpRequest) -> bool:
    """This session signed in with an authenticator code, and the user still has one."""
    from allauth.account.authentication import get_authentication_records
    from allauth.mfa.models import Authenticator
    from allauth.mfa.utils import is_mfa_enabled

    user = request.user
    if not is_mfa_enabled(user, types=[Authenticator.Type.TOTP]):
        return False
    return any(record.get("method") == "mfa" for record in get_authentication_records(request, user))


# dj-stripe registers about 40 tables, its synced copy of Stripe. Staff work in Billing; these are for
# checking what Stripe holds, so the index shows a few of them under one heading and links the rest.
STRIPE_APP = "djstripe"
STRIPE_SECTION = "Stripe (advanced)"
STRIPE_ON_INDEX = ("Customer", "PaymentIntent", "Charge", "Event")


class ParleyAdminSite(admin.AdminSite):
    site_header = site_title = "Parley admin"
    index_title = "Operations"

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict]:
        app_list = super().get_app_list(request, app_label)
        for app in app_list:
            if app["app_label"] == STRIPE_APP:
                _stripe_section(app, whole=app_label == STRIPE_APP)
        # The synced Stripe copy goes last: it is where staff look least.
        app_list.sort(key=lambda app: app["app_label"] == STRIPE_APP)
        return app_list

    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and staff_second_factor_passed(request)

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        target = redirect_target(request, default=reverse("admin:index"))
        user = request.user
        if not user.is_authenticated:
            return HttpResponseRedirect(f"{reverse('account_login')}?{urlencode({'next': target})}")
        if not (user.is_active and user.is_staff):
            raise PermissionDenied("Admin is for staff.")
        from allauth.mfa.models import Authenticator
        from allauth.mfa.utils import is_mfa_enabled

        if not is_mfa_enabled(user, types=[Authenticator.Type.TOTP]):
            messages.info(request, "Admin needs a second factor. Add an authenticator app here, then open admin again.")
            return HttpResponseRedirect(reverse("mfa_activate_totp"))
        if not staff_second_factor_passed(request):
            return HttpResponseRedirect(f"{reverse('mfa_reauthenticate')}?{urlencode({'next': target})}")
        return HttpResponseRedirect(target)


def _stripe_section(app: dict, *, whole: bool) -> None:
    """dj-stripe's section as staff see it: renamed, its API keys told apart from Parley's, and on the index
    (and the sidebar) only STRIPE_ON_INDEX plus one row that opens the whole list."""
    app["name"] = STRIPE_SECTION
    for model in app["models"]:
        if model["object_name"] == "APIKey":
            model["name"] = "Stripe API keys"
    if whole:
        return
    every = len(app["models"])
    app["models"] = [model for model in app["models"] if model["object_name"] in STRIPE_ON_INDEX]
    app["models"].append({
        "name": f"All {every} Stripe tables…", "object_name": "StripeTables", "perms": {"view": True},
        "admin_url": app["app_url"], "add_url": None, "view_only": True,
    })


class ParleyAdminConfig(AdminConfig):
    default_site = "config.admin_site.ParleyAdminSite"
