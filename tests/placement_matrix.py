"""The placements a suite runs in: both tenants shared, each one in a dedicated schema while the
other is shared, and both in dedicated schemas (two different ones). A suite takes them with
`from tests.placement_matrix import placements  # noqa: F401` (overriding the conftest's)."""

import pytest

PAIRS = [
    ("shared", "shared"),
    ("schema", "shared"),
    ("shared", "schema"),
    ("schema", "schema"),
]


@pytest.fixture(params=PAIRS, ids=["-".join(p) for p in PAIRS])
def placements(request) -> tuple[str, str]:
    return request.param
