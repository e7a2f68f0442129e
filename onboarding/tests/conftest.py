from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def onboarding_rows(db) -> None:
    """The seeded steps, badges and assistants (transactional tests empty every table, seeds included)."""
    from chat.seed import assistants_seed
    from onboarding.seed import onboarding_seed

    onboarding_seed()
    assistants_seed()
