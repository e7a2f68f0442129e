from __future__ import annotations

from django.urls import path

from arena import views

app_name = "arena"

urlpatterns = [
    path("", views.arena_home, name="home"),
    path("leaderboard/", views.leaderboard_page, name="leaderboard"),
    path("battles/<int:battle_id>/", views.battle_page, name="battle"),
    path("battles/<int:battle_id>/stream/", views.battle_stream, name="battle_stream"),
    path("battles/<int:battle_id>/vote/", views.battle_vote_view, name="battle_vote"),
]
