"""A collection staff made readable by everyone: every signed-in user reads it, nobody else writes it,
and only staff may set it."""

from __future__ import annotations

import pytest

from accounts.tests.factories import user_make
from common.errors import ApplicationError
from knowledge.selectors import ACCESS_READ, ACCESS_WRITE, collection_access, collection_get_for, collections_readable
from knowledge.services import collection_readable_by_all_set
from knowledge.tests.factories import collection_make

pytestmark = pytest.mark.django_db


def test_everyone_reads_it_and_nobody_but_its_owner_writes_it():
    staff, reader = user_make(is_staff=True), user_make()
    collection = collection_make(user=staff, name="Starter")
    assert collection not in collections_readable(user=reader)

    collection_readable_by_all_set(user=staff, collection=collection, readable=True)

    assert collection in collections_readable(user=reader)
    assert collection_access(user=reader, collection=collection) == ACCESS_READ
    with pytest.raises(ApplicationError) as refused:
        collection_get_for(user=reader, collection_id=collection.pk, need=ACCESS_WRITE)
    assert refused.value.status == 403

    collection_readable_by_all_set(user=staff, collection=collection, readable=False)
    assert collection not in collections_readable(user=reader)


def test_only_staff_managing_it_may_open_it_to_everyone():
    user, staff = user_make(), user_make(is_staff=True)
    own = collection_make(user=user)
    with pytest.raises(ApplicationError) as not_staff:
        collection_readable_by_all_set(user=user, collection=own, readable=True)
    assert not_staff.value.status == 403
    with pytest.raises(ApplicationError) as not_theirs:  # staff, but not a collection they manage
        collection_readable_by_all_set(user=staff, collection=own, readable=True)
    assert not_theirs.value.status == 404
    own.refresh_from_db()
    assert not own.readable_by_all
