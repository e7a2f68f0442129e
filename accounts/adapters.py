from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest

from accounts.models import User
from accounts.services import team_create_personal


class AccountAdapter(DefaultAccountAdapter):
    """allauth creates the user row from its form; Parley adds the personal team in the same step."""

    def save_user(self, request: HttpRequest, user: User, form, commit: bool = True) -> User:
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            team_create_personal(user=user)
        return user
