"""Signal receivers: each hands over to one service."""

from __future__ import annotations

from allauth.account.signals import user_logged_in
from django.dispatch import receiver

from onboarding.services.consent import consent_adopt_on_sign_in


@receiver(user_logged_in, dispatch_uid="onboarding_consent_adopt_on_sign_in")
def consent_adopt(sender, request, user, **kwargs) -> None:
    """A visitor who chose on the banner before signing in isn't asked again once signed in."""
    if request is not None:
        consent_adopt_on_sign_in(request=request, user=user)
