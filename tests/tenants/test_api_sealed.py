"""The sealed base of tenant API views: a subclass cannot replace how rows are found."""

from __future__ import annotations

import pytest

from tenants.api import TenantViewSet
from workflows import selectors


@pytest.mark.parametrize("method", ["get_queryset", "get_object", "initial"])
def test_a_subclass_overriding_a_sealed_method_is_refused_at_class_creation(method):
    with pytest.raises(TypeError, match=f"overrides {method}"):
        type(
            "Widened", (TenantViewSet,), {"selector": selectors.workflow_list, method: lambda s: 0}
        )


def test_a_subclass_without_a_selector_is_refused():
    with pytest.raises(TypeError, match="must set `selector`"):
        type("Unscoped", (TenantViewSet,), {})


def test_a_subclass_with_a_selector_and_its_own_filter_is_accepted():
    view = type(
        "Narrowed",
        (TenantViewSet,),
        {"selector": selectors.workflow_list, "filter_queryset": lambda s, q: q},
    )
    assert issubclass(view, TenantViewSet)
