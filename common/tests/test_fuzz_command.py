"""`manage.py fuzz` against a live Daphne: signs in, fuzzes the API and a page, finds nothing."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_long_fuzz_run_works_against_a_live_server(live_daphne, bundled_models):
    out = io.StringIO()

    call_command("fuzz", url=live_daphne["url"], examples=1, pages=["/app/keys/"], stdout=out)

    text = out.getvalue()
    assert "API: " in text and "Pages: " in text
    assert "0 responses of 500 or more." in text
