"""Creating a tenant: the tenant and its signed audit row in one statement, or neither."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.models.sql import InsertQuery
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tenants.exceptions import TenantInputError
from tenants.models import AuditEvent, Tenant
from tenants.services import tenant_create

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "owner"])


def test_one_statement_in_autocommit_writes_the_tenant_and_its_audit_row():
    tenant_create(slug="warm-up", name="Warm")  # reserves a block of ids first
    assert connection.get_autocommit()
    with CaptureQueriesContext(connection) as captured:
        tenant = tenant_create(slug="acme", name="Acme")
    assert [q["sql"].split(" ", 1)[0] for q in captured.captured_queries] == ["WITH"]
    stored = Tenant.objects.get(slug="acme")
    assert stored.pk == tenant.pk and stored.name == "Acme" and stored.created_at is not None
    event = AuditEvent.objects.get(action="tenant.create", tenant_slug="acme")
    assert event.tenant_id_value == tenant.pk
    assert event.details == {"name": "Acme"}


def test_a_refused_create_writes_neither_row():
    tenant_create(slug="acme", name="Acme")
    with pytest.raises(TenantInputError, match="already exists"):
        tenant_create(slug="acme", name="Again")
    assert Tenant.objects.filter(slug="acme").count() == 1
    assert AuditEvent.objects.filter(action="tenant.create", tenant_slug="acme").count() == 1


def test_inside_a_transaction_a_refusal_leaves_the_transaction_usable():
    with transaction.atomic():
        tenant_create(slug="acme", name="Acme")
        with pytest.raises(TenantInputError):
            tenant_create(slug="acme", name="Again")
        tenant_create(slug="globex", name="Globex")
    assert set(Tenant.objects.values_list("slug", flat=True)) == {"acme", "globex"}


def test_ids_are_reserved_from_the_sequence_and_never_handed_out_twice():
    ids = [tenant_create(slug=f"t{n}", name=f"T{n}").pk for n in range(40)]
    assert len(set(ids)) == 40
    # An insert that takes the sequence's default does not collide with a reserved id.
    other = Tenant.objects.create(slug="by-default", name="Default", external_id="by-default")
    assert other.pk not in ids


def test_the_statement_compiled_once_sends_what_djangos_insert_would(monkeypatch):
    # The insert's text is compiled once per database; its values must still be the ones
    # Django's compiler would send for this very tenant (a field with a new default, a
    # placeholder or a conversion would otherwise reach PostgreSQL unprepared).
    tenant_create(slug="warm-up", name="Warm")
    frozen = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: frozen)  # auto_now fields, both times alike
    with CaptureQueriesContext(connection) as captured:
        tenant = tenant_create(slug="acme", name="Acme", external_id="acme-idp")
    [sent] = captured.captured_queries
    insert = InsertQuery(Tenant)
    insert.insert_values(Tenant._meta.concrete_fields, [Tenant.objects.get(pk=tenant.pk)])
    [(insert_sql, insert_params)] = insert.get_compiler(using="default").as_sql()
    expected = connection.ops.compose_sql(insert_sql, insert_params)
    assert sent["sql"].startswith(f"WITH created AS ({expected} RETURNING 1) ")
