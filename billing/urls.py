from __future__ import annotations

from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("checkout/", views.checkout, name="checkout"),
    path("card/", views.card, name="card"),
    path("card/setup-intent/", views.card_setup_intent, name="card_setup_intent"),
    path("card/done/", views.card_done, name="card_done"),
    path("purchases/<int:purchase_id>/cancel/", views.purchase_cancel, name="cancel"),
    path("purchases/<int:purchase_id>/pay-due/", views.purchase_pay_due, name="pay_due"),
    path("payments/<int:attempt_id>/authenticate/", views.attempt_authenticate, name="authenticate"),
]
