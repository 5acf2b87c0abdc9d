"""Fixtures of the limits tests: limits read fresh on every request, usage written at once."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_limits(settings):
    settings.TENANCY_LIMITS_CACHE_SECONDS = 0
    settings.TENANCY_USAGE_FLUSH_SECONDS = 0
    from limits import quotas, selectors

    selectors._cache.clear()
    quotas.forget_measurements()


def set_limits(tenant, **values) -> None:
    from limits.services import limits_change

    limits_change(tenant=tenant, set_values=values)
