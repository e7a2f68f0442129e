"""The per-process copy of the model catalog: no queries once warm, and every change seen by the next request."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tests.factories import user_make
from common.errors import ApplicationError
from common.redis_connection import redis_client
from inference.access import specs_allowed
from inference.models import ModelSpec, Route
from inference.selectors import CATALOG_VERSION_KEY, route_get, route_resolve
from inference.services import Caller, catalog_changed, modelspecs_set_enabled, route_set

# Transactional: the copy is never used inside a transaction, which is where django_db tests run.
pytestmark = [pytest.mark.django_db(transaction=True)]


def test_a_warm_catalog_resolves_a_route_without_a_query(bundled_models):
    route_resolve(model="chat-default", task="chat")  # warm
    with CaptureQueriesContext(connection) as queries:
        alias, specs = route_resolve(model="chat-default", task="chat")
        route_get(alias=alias)
    assert alias == "chat-default" and specs
    assert len(queries) == 0, [q["sql"] for q in queries]


def test_saving_a_route_or_a_model_is_seen_by_the_next_lookup(bundled_models):
    outsider = user_make()
    route_set(alias="chat-ops", task="chat", spec_names=["smollm2-135m"])
    assert route_resolve(model="chat-ops", task="chat")[0] == "chat-ops"

    # Staff close the route to the Pro plan in admin (a save): the next request is refused.
    route = Route.objects.get(alias="chat-ops")
    route.access_plans = ["pro"]
    route.save()
    alias, specs = route_resolve(model="chat-ops", task="chat")
    with pytest.raises(ApplicationError):
        specs_allowed(caller=Caller(user=outsider), model="chat-ops", route=route_get(alias=alias), specs=specs)

    # The enabled switch writes with .update(); it marks the catalog changed itself.
    modelspecs_set_enabled(names=["smollm2-135m"], enabled=False)
    with pytest.raises(ApplicationError, match="disabled"):
        route_resolve(model="smollm2-135m", task="chat")
    modelspecs_set_enabled(names=["smollm2-135m"], enabled=True)
    assert route_resolve(model="smollm2-135m", task="chat")[1][0].enabled

    # A deleted route is gone for the next lookup.
    Route.objects.filter(alias="chat-ops").delete()
    with pytest.raises(ApplicationError, match="does not exist"):
        route_resolve(model="chat-ops", task="chat")


def test_a_write_that_skips_the_signals_is_seen_once_marked_changed_or_after_redis_is_emptied(bundled_models):
    route_resolve(model="smollm2-135m", task="chat")  # warm
    ModelSpec.objects.filter(name="smollm2-135m").update(description="Renamed: tiny")
    catalog_changed()
    assert route_resolve(model="smollm2-135m", task="chat")[1][0].description == "Renamed: tiny"

    ModelSpec.objects.filter(name="smollm2-135m").update(description="Renamed again: tiny")
    redis_client().delete(CATALOG_VERSION_KEY)  # Redis restarted empty: every copy is suspect
    assert route_resolve(model="smollm2-135m", task="chat")[1][0].description == "Renamed again: tiny"


def test_inside_a_transaction_the_database_is_read(bundled_models):
    from django.db import transaction

    route_resolve(model="smollm2-135m", task="chat")  # warm
    with transaction.atomic():
        ModelSpec.objects.filter(name="smollm2-135m").update(enabled=False)  # not yet committed, no signal
        with pytest.raises(ApplicationError, match="disabled"):
            route_resolve(model="smollm2-135m", task="chat")
        transaction.set_rollback(True)
    assert route_resolve(model="smollm2-135m", task="chat")[1][0].enabled
