"""The context at its edges: threads, caches, exceptions, async hand-offs."""

from __future__ import annotations

import threading

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core.cache import cache

from tenants.context import current_tenant, tenant_context, unscoped
from tenants.exceptions import TenantNotSet
from workflows.models import Workflow

pytestmark = pytest.mark.django_db


def test_a_new_thread_starts_without_a_tenant(tenant_a):
    seen = {}

    def work():
        try:
            current_tenant()
            seen["result"] = "had a tenant"
        except TenantNotSet:
            seen["result"] = "no tenant"

    with tenant_context(tenant_a):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    assert seen["result"] == "no tenant"


def test_the_context_is_reset_after_an_exception(tenant_a):
    with pytest.raises(RuntimeError), tenant_context(tenant_a):
        raise RuntimeError("boom")
    with pytest.raises(TenantNotSet):
        current_tenant()


def test_sync_to_async_carries_the_tenant(tenant_a, tenant_b):
    with tenant_context(tenant_b):
        Workflow.objects.create(name="only-b")

    async def names():
        return await sync_to_async(lambda: set(Workflow.objects.values_list("name", flat=True)))()

    with tenant_context(tenant_b):
        assert async_to_sync(names)() == {"only-b"}
    with tenant_context(tenant_a):
        assert async_to_sync(names)() == set()


def test_cache_keys_carry_the_tenant(tenant_a, tenant_b):
    cache.clear()
    with tenant_context(tenant_a):
        cache.set("report", "A's numbers")
        assert cache.get("report") == "A's numbers"
    with tenant_context(tenant_b):
        assert cache.get("report") is None
        cache.set("report", "B's numbers")
    with tenant_context(tenant_a):
        assert cache.get("report") == "A's numbers"
    assert cache.get("report") is None  # outside any tenant: a key space of its own
    with unscoped(reason="test: cache"):
        assert cache.get("report") is None
