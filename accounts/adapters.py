from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django import forms
from django.http import HttpRequest

from accounts.login_limits import login_failure_record, login_failures_clear, login_wait_seconds
from accounts.models import User
from accounts.services import team_create_personal


class AccountAdapter(DefaultAccountAdapter):
    """allauth creates the user row from its form; Parley adds the personal team in the same step."""

    def save_user(self, request: HttpRequest, user: User, form, commit: bool = True) -> User:
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            team_create_personal(user=user)
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
