"""The header's tour ring and badge entry point, for every signed-in page.

Lazy: the queries run only when a template reads `onboarding.…`, so pages without the header
(admin, JSON) pay nothing.
"""

from __future__ import annotations

from functools import cached_property

from django.http import HttpRequest


class OnboardingHeader:
    def __init__(self, request: HttpRequest):
        self.request = request

    @cached_property
    def tour(self) -> dict[str, object]:
        from onboarding.selectors import tour_state

        return tour_state(user=self.request.user)

    @cached_property
    def ring_visible(self) -> bool:
        return self.tour["state"] in ("active", "paused")

    @cached_property
    def ring_offset(self) -> float:
        """stroke-dashoffset of the ring's arc (its circumference is 100)."""
        return 100 - float(self.tour["percent"])

    @cached_property
    def awards(self) -> list:
        from onboarding.selectors import awards_of_user

        return list(awards_of_user(user=self.request.user))

    @cached_property
    def client_state(self) -> dict[str, object]:
        """What the page's scripts start from (rendered with json_script, so no inline script)."""
        from django.middleware.csrf import get_token

        from onboarding.selectors import award_toast

        return {
            "csrf": get_token(self.request),
            "tour": self.tour,
            "unseen_awards": [award_toast(a) for a in self.awards if a.seen_at is None],
        }


def onboarding(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"onboarding": OnboardingHeader(request)}
