"""Writes for users, teams, memberships, invitations, the profile and API keys."""

from __future__ import annotations

from accounts.services.invitations import (
    INVITATION_DAYS,
    invitation_accept,
    invitation_check,
    invitation_create,
    invitation_from_token,
    invitation_link,
    invitation_mark_sent,
    invitation_resend,
    invitation_revoke,
    invitation_token,
)
from accounts.services.profile import profile_update
from accounts.services.teams import (
    membership_remove,
    membership_role_set,
    team_leave,
    team_rename,
    team_require_manager,
)
from accounts.services.users import (
    apikey_create,
    apikey_revoke,
    apikey_touch,
    membership_add,
    team_create,
    team_create_personal,
    user_create,
    user_email_verify,
)

__all__ = [
    "INVITATION_DAYS", "apikey_create", "apikey_revoke", "apikey_touch", "invitation_accept", "invitation_check",
    "invitation_create", "invitation_from_token", "invitation_link", "invitation_mark_sent", "invitation_resend",
    "invitation_revoke", "invitation_token", "membership_add", "membership_remove", "membership_role_set",
    "profile_update", "team_create", "team_create_personal", "team_leave", "team_rename", "team_require_manager",
    "user_create", "user_email_verify",
]
