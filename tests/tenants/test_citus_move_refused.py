"""`tenants move --to node` off Citus: refused with a plain line, nothing written; and
`tenants list`/`show` print no node there. On a cluster: tests/citus (make test-citus)."""

from __future__ import annotations

import json

import pytest

from tenants.citus.nodes import tenant_shards
from tests.tenants.cli_support import database_state, refused, tenants

pytestmark = pytest.mark.django_db(databases=["default", "owner"])


def test_move_to_a_node_is_refused_off_citus_and_writes_nothing(tenant_a):
    before = database_state()
    refused("move", "alpha", "--to", "node", "127.0.0.1:9701", match="needs a Citus coordinator")
    refused("move", "alpha", "--to", "node", "127.0.0.1:9701", "--dry-run", match="Citus")
    assert database_state() == before


def test_move_refuses_other_destinations_and_unknown_tenants(tenant_a):
    refused("move", "alpha", "--to", "moon", "x", match="Unknown destination 'moon'")
    refused("move", "alpha", "--to", "database", "eu", match="No dedicated database 'eu'")
    refused("move", "nobody", "--to", "node", "127.0.0.1:9701", match="No tenant")


def test_list_and_show_print_no_node_off_citus(tenant_a):
    assert tenant_shards(tenant_ids=[tenant_a.pk]) == {}
    listed = json.loads(tenants("list", "--json")[0])
    assert [t["slug"] for t in listed] == ["alpha"] and "citus" not in listed[0]
    assert "node" not in tenants("list")[0] and "node:" not in tenants("show", "alpha")[0]
