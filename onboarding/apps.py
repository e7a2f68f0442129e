from __future__ import annotations

from django.apps import AppConfig


class OnboardingConfig(AppConfig):
    name = "onboarding"

    def ready(self) -> None:
        from onboarding import receivers  # noqa: F401 - connects the sign-in consent receiver
