from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def onboarding_rows(db) -> None:
    """The seeded steps, badges and assistants (transactional tests empty every table, seeds included)."""
    from chat.seed import assistants_seed
    from onboarding.seed import onboarding_seed

    onboarding_seed()
    assistants_seed()


@pytest.fixture(autouse=True)
def six_step_tour(settings) -> None:
    """These tests count and walk the tour's steps as they were before the evaluation page existed: without its
    step, as PARLEY_TOUR_EVALUATION_URL="" (a supported setting) leaves it. The default since the page exists
    (/app/evaluation/, seven steps) is checked in test_tour and walked in tests/test_browser_onboarding.py."""
    settings.PARLEY_TOUR_EVALUATION_URL = ""
