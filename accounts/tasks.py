"""Accounts' Celery tasks (queue `default`)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string

from accounts.models import Invitation
from accounts.services import invitation_link, invitation_mark_sent

logger = logging.getLogger(__name__)


@shared_task(name="accounts.tasks.invitation_send", autoretry_for=(OSError,), retry_backoff=30,
             retry_backoff_max=1800, max_retries=8)
def invitation_send(invitation_id: int, nonce: str) -> bool:
    """Mail the invitation link. Safe to run twice (a duplicate mail carries the same working link);
    a link replaced meanwhile by a re-send, or an invitation closed meanwhile, is not mailed."""
    invitation = Invitation.objects.select_related("team", "invited_by").filter(pk=invitation_id, nonce=nonce).first()
    if invitation is None or invitation.state != Invitation.State.PENDING:
        return False
    context = {"invitation": invitation, "link": invitation_link(invitation), "site_name": settings.SITE_NAME,
               "inviter": invitation.invited_by.display_name if invitation.invited_by else "Someone"}
    subject = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + render_to_string(
        "accounts/email/invitation_subject.txt", context).strip()
    send_mail(subject, render_to_string("accounts/email/invitation_message.txt", context), None, [invitation.email])
    # Marked only once the mail went out: a failed send is retried, never recorded as sent.
    return invitation_mark_sent(invitation_id=invitation_id, nonce=nonce)
