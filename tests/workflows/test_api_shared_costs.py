"""The API's cheaper shared parts answer exactly as DRF's and django-filter's own would:
date-times written without a time-zone lookup per value, filters built only when named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from rest_framework import serializers

from ameide.api_io import UTCDateTimeField, _names_a_filter
from workflows.filters import WorkflowFilter


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC),
        datetime(1, 1, 1, 0, 0, tzinfo=UTC),
        datetime(2026, 6, 30, 23, 59, 59, tzinfo=timezone(timedelta(hours=-7))),
        None,
        "already text",
    ],
)
def test_utc_date_times_are_written_as_drf_writes_them(value):
    assert UTCDateTimeField().to_representation(value) == (
        serializers.DateTimeField().to_representation(value)
    )


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({}, False),
        ({"cursor": "x", "ordering": "name"}, False),
        ({"status": "active"}, True),
        ({"created_after": "2026-01-01T00:00:00Z"}, True),
    ],
)
def test_the_filter_set_is_built_only_when_a_filter_is_named(params, named):
    assert _names_a_filter(params, WorkflowFilter.base_filters) is named


@pytest.mark.django_db
def test_a_named_but_invalid_filter_is_still_refused(client_a):
    response = client_a.get("/api/workflows/", {"status": ""})
    assert response.status_code == 400
    assert "status" in response.content.decode()
