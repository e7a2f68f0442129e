from __future__ import annotations

from django.urls import path

from accounts import profile_views, team_views, views

urlpatterns = [
    path("keys/", views.apikeys_page, name="apikeys"),
    path("keys/<int:pk>/revoke/", views.apikey_revoke_view, name="apikey_revoke"),
    path("profile/", profile_views.profile_page, name="profile"),
    path("profile/name/", profile_views.profile_name, name="profile_name"),
    path("avatars/<int:user_id>/", profile_views.avatar_view, name="avatar"),
    path("teams/", team_views.teams_page, name="teams"),
    path("teams/<int:team_id>/", team_views.team_detail, name="team_detail"),
    path("teams/<int:team_id>/invite/", team_views.team_invite, name="team_invite"),
    path("teams/<int:team_id>/invitations/<int:invitation_id>/resend/", team_views.invitation_action,
         {"action": "resend"}, name="invitation_resend"),
    path("teams/<int:team_id>/invitations/<int:invitation_id>/revoke/", team_views.invitation_action,
         {"action": "revoke"}, name="invitation_revoke"),
    path("teams/<int:team_id>/members/<int:user_id>/role/", team_views.membership_role, name="membership_role"),
    path("teams/<int:team_id>/members/<int:user_id>/remove/", team_views.membership_remove_view,
         name="membership_remove"),
    path("teams/<int:team_id>/leave/", team_views.team_leave_view, name="team_leave"),
    path("teams/<int:team_id>/usage/", team_views.team_usage, name="team_usage"),
    path("invitations/<str:token>/", team_views.invitation_page, name="invitation"),
]
