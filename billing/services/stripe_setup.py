"""Local mode only: the dj-stripe rows Stripe would normally provide, and localstripe's webhook.

dj-stripe needs an Account and an APIKey before it syncs anything, and a WebhookEndpoint (with its
signing secret) before its webhook view accepts an event. Against real Stripe these come from
Stripe itself (see README), so this refuses to run in live or test mode.
"""

from __future__ import annotations

import secrets

import requests
from django.conf import settings
from django.db import transaction
from django.urls import reverse

from billing import stripe_api
from common.errors import ApplicationError

LOCAL_ACCOUNT_ID = "acct_parleylocal"
LOCAL_ENDPOINT_ID = "we_parleylocal"
LOCALSTRIPE_WEBHOOK_NAME = "parley"


@transaction.atomic
def stripe_local_setup(*, site_url: str, register: bool = True):
    """Create (or refresh) the local Account, APIKey and WebhookEndpoint; point localstripe at it."""
    from djstripe.models import Account, APIKey, WebhookEndpoint

    if stripe_api.billing_mode() != "local":
        raise ApplicationError("Local Stripe setup runs only in local mode (no real Stripe key).", code="not_local")
    account, _ = Account.objects.get_or_create(
        id=LOCAL_ACCOUNT_ID, defaults={"livemode": False, "stripe_data": {"id": LOCAL_ACCOUNT_ID, "object": "account"}}
    )
    api_key, _ = APIKey.objects.get_or_create_by_api_key(settings.STRIPE_SECRET_KEY)
    if api_key.djstripe_owner_account_id != account.pk:
        APIKey.objects.filter(pk=api_key.pk).update(djstripe_owner_account=account)
    endpoint = WebhookEndpoint.objects.filter(id=LOCAL_ENDPOINT_ID).first()
    if endpoint is None:
        endpoint = WebhookEndpoint.objects.create(
            id=LOCAL_ENDPOINT_ID, livemode=False, secret="whsec_" + secrets.token_hex(24), enabled_events=["*"],
            status="enabled", url="http://placeholder.invalid/", api_version="", djstripe_owner_account=account,
            stripe_data={"id": LOCAL_ENDPOINT_ID, "object": "webhook_endpoint"},
        )
    url = site_url.rstrip("/") + reverse("djstripe:djstripe_webhook_by_uuid", args=[endpoint.djstripe_uuid])
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=url)
    endpoint.url = url
    if register:
        localstripe_webhook_register(url=url, secret=endpoint.secret)
    return endpoint


def localstripe_webhook_register(*, url: str, secret: str) -> None:
    response = requests.post(
        f"{settings.STRIPE_API_BASE}/_config/webhooks/{LOCALSTRIPE_WEBHOOK_NAME}",
        data={"url": url, "secret": secret}, timeout=10,
    )
    response.raise_for_status()
