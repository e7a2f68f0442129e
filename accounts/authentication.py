"""DRF authentication by `Authorization: Bearer <api key>`."""

from __future__ import annotations

import copy

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.models import ApiKey, User
from accounts.selectors import apikey_authenticate
from accounts.services import apikey_touch


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header:
            return None
        keyword, _, key = header.partition(" ")
        if keyword != self.keyword or not key.strip():
            raise exceptions.AuthenticationFailed("Send the API key as `Authorization: Bearer <key>`.")
        api_key = apikey_authenticate(key=key.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed(
                "Invalid or revoked API key. Create a new key on the API keys page of the app."
            )
        apikey_touch(api_key=api_key)
        # The key is shared by this process's requests (accounts.selectors); a view that changes its
        # request.user must not change anyone else's.
        return copy.copy(api_key.user), api_key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
