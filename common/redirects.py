"""Where a form may send the user afterwards: only a path on this site, never another one."""

from __future__ import annotations

import unicodedata

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme


def redirect_target(request: HttpRequest, *, default: str) -> str:
    """The `next` field (POST, then query) if it is a safe local path, else `default`."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    # A bare word ("history") would be taken as a relative URL, and `//evil.example` or
    # `/\evil.example` as another host by browsers; only an absolute path on this site passes.
    if any(unicodedata.category(char)[0] == "C" for char in target):
        return default  # a newline would end up in the Location header
    if (target.startswith("/") and not target.startswith(("//", "/\\"))
            and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                require_https=request.is_secure())):
        return target
    return default
