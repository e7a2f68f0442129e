from __future__ import annotations

from django.urls import path

from accounts import views

urlpatterns = [
    path("", views.app_home, name="app_home"),
    path("keys/", views.apikeys_page, name="apikeys"),
    path("keys/<int:pk>/revoke/", views.apikey_revoke_view, name="apikey_revoke"),
]
