"""`manage.py fuzz` against a live Daphne: signs in, fuzzes a page's forms, finds nothing.

The API half is not run here: against a live stack its valid /v1 requests run real generations on
the shared test worker, which would hold its slots for later tests. tests/test_fuzz.py runs the
same API fuzzer (common.fuzz.api_fuzz) in-process with model budgets at zero."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_long_fuzz_run_works_against_a_live_server(live_daphne, bundled_models):
    out = io.StringIO()

    call_command("fuzz", url=live_daphne["url"], pages=["/app/keys/"], skip_api=True, stdout=out)

    text = out.getvalue()
    assert "Pages: " in text
    assert "0 responses of 500 or more." in text
