"""The consent banner's state on every page: the current choice and any Do Not Track / GPC signal."""

from __future__ import annotations

from django import template
from django.conf import settings
from django.urls import reverse

register = template.Library()


@register.simple_tag(takes_context=True)
def consent_state(context) -> dict[str, object]:
    """`ask`: show the banner (no choice under this policy version, no signal); `notice`: say why
    we don't ask (a signal and nothing recorded yet). `client` goes to the scripts via json_script."""
    from onboarding.services import consent_choice, privacy_signal

    request = context.get("request")
    user = getattr(request, "user", None)
    user_id = user.pk if user is not None and user.is_authenticated else None
    choice = consent_choice(request=request, user_id=user_id) if request is not None else None
    signal = privacy_signal(request)
    return {
        "choice": choice,
        "signal": signal,
        "ask": choice is None and not signal,
        "notice": choice is None and bool(signal),
        "client": {
            "choice": choice,
            "signal": signal,
            "consentUrl": reverse("privacy_consent"),
            "eventsUrl": reverse("analytics_events"),
            "policyVersion": settings.PARLEY_ANALYTICS_POLICY_VERSION,
        },
    }
