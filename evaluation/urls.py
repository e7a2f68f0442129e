from __future__ import annotations

from django.urls import path

from evaluation import views

app_name = "evaluation"

# Pages under /app/evaluation/ (namespace "evaluation").
urlpatterns = [
    path("", views.evaluation_page, name="index"),
    path("challenge/", views.challenge_start, name="challenge_start"),
    path("runs/", views.run_start, name="run_start"),
    path("runs/<int:run_id>/", views.run_page, name="run"),
    path("runs/<int:run_id>/progress/", views.run_progress, name="run_progress"),
    path("items/", views.item_create, name="item_create"),
    path("items/<int:item_id>/delete/", views.item_delete, name="item_delete"),
]
