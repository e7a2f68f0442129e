"""Writes to the model catalog mark every process's cached copy as old (inference.selectors)."""

from __future__ import annotations

from django.db.models.signals import m2m_changed, post_delete, post_save

from inference.models import ModelSpec, ModelVariant, Route, RouteEntry


def _changed(sender, **kwargs) -> None:
    from inference.services import catalog_changed

    catalog_changed()


def connect() -> None:
    for model in (ModelSpec, ModelVariant, Route, RouteEntry,
                  ModelSpec.access_teams.through, Route.access_teams.through):
        post_save.connect(_changed, sender=model, dispatch_uid=f"parley-catalog-save-{model._meta.label}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"parley-catalog-delete-{model._meta.label}")
    for through in (ModelSpec.access_teams.through, Route.access_teams.through):
        m2m_changed.connect(_changed, sender=through, dispatch_uid=f"parley-catalog-m2m-{through._meta.label}")
