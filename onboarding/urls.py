from __future__ import annotations

from django.urls import path

from onboarding import views

urlpatterns = [
    path("", views.welcome, name="app_home"),
    path("welcome/chat/", views.welcome_chat, name="welcome_chat"),
    path("welcome/last-chat/", views.last_chat, name="welcome_last_chat"),
    path("badges/", views.badges_page, name="badges"),
    path("badges/seen/", views.awards_seen, name="awards_seen"),
    path("badges/unseen/", views.awards_unseen_view, name="awards_unseen"),
    path("tour/", views.tour_state_view, name="tour_state"),
    path("tour/continue/", views.tour_continue, name="tour_continue"),
    path("tour/start/", views.tour_start_view, name="tour_start"),
    path("tour/next/", views.tour_next_view, name="tour_next"),
    path("tour/pause/", views.tour_pause_view, name="tour_pause"),
    path("tour/resume/", views.tour_resume_view, name="tour_resume"),
    path("tour/skip/", views.tour_skip_view, name="tour_skip"),
    path("tour/replay/", views.tour_replay_view, name="tour_replay"),
]
