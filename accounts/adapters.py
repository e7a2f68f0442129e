from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from accounts.login_limits import login_failure_record, login_failures_clear, login_wait_seconds
from accounts.models import User
from accounts.services import invitation_accept, team_create_personal
from common.errors import ApplicationError
from onboarding.services import Event, event_record

# The invitation link a signed-out visitor opened; accepted once they sign up or log in.
INVITATION_SESSION_KEY = "parley_invitation_token"


class AccountAdapter(DefaultAccountAdapter):
    """allauth creates the user row from its form; Parley adds the personal team in the same step."""

    def save_user(self, request: HttpRequest, user: User, form, commit: bool = True) -> User:
        user.name = " ".join(str(form.cleaned_data.get("name") or "").split())[:150]
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            team_create_personal(user=user)
            event_record(user_id=user.pk, name=Event.SIGNED_UP)
        return user

    # ---- failed log-ins: per account and client address (accounts/login_limits.py says why)

    def _login_email(self, credentials: dict[str, Any]) -> str:
        return str(credentials.get("email") or credentials.get("username") or "")

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        # allauth's "5/5m/key" limit, keyed by the account alone, becomes per account and client.
        return f"{super()._get_login_attempts_cache_key(request, **credentials)}:{self.get_client_ip(request)}"

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        wait = login_wait_seconds(email=self._login_email(credentials), ip=self.get_client_ip(request))
        if wait:
            minutes = (wait + 59) // 60
            raise forms.ValidationError(
                f"Too many failed log-ins for this account from your network. Try again in {minutes} "
                f"minute{'s' if minutes != 1 else ''}, or reset your password.", code="too_many_login_attempts")
        super().pre_authenticate(request, **credentials)

    def authenticate(self, request: HttpRequest, **credentials: Any) -> User | None:
        user = super().authenticate(request, **credentials)
        if user is not None:
            login_failures_clear(email=self._login_email(credentials), ip=self.get_client_ip(request))
        return user

    def _delete_login_attempts_cached_email(self, request: HttpRequest, **credentials: Any) -> None:
        # A password reset (allauth calls this after one) clears that place's wait too.
        super()._delete_login_attempts_cached_email(request, **credentials)
        login_failures_clear(email=self._login_email(credentials), ip=self.get_client_ip(request))

    def authentication_failed(self, request: HttpRequest, **credentials: Any) -> None:
        login_failure_record(email=self._login_email(credentials), ip=self.get_client_ip(request))

    def confirm_email(self, request: HttpRequest, email_address) -> bool:
        confirmed = super().confirm_email(request, email_address)
        if confirmed:
            event_record(user_id=email_address.user_id, name=Event.EMAIL_VERIFIED)
        return confirmed

    def post_login(self, request: HttpRequest, user: User, **kwargs) -> HttpResponse:
        """Logged in (after a log-in, a sign-up or a one-click verification): join the team whose
        invitation brought them here, if any, and land on that team's page."""
        from allauth.account.models import EmailAddress

        if kwargs.get("signup") and EmailAddress.objects.filter(user=user, verified=True).exists():
            # Signed up through an invitation: the link proved the address, so it is verified already.
            event_record(user_id=user.pk, name=Event.EMAIL_VERIFIED)
        token = request.session.pop(INVITATION_SESSION_KEY, None)
        if token:
            try:
                membership = invitation_accept(token=token, user=user)
            except ApplicationError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, f"You joined {membership.team.name}.")
                kwargs["redirect_url"] = reverse("team_detail", args=[membership.team_id])
        return super().post_login(request, user, **kwargs)
