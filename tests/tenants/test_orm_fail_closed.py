"""Every ORM entry point, sync and async: no tenant -> TenantNotSet and nothing written;
under A only A's rows; under B only B's rows. Once per pair of placements of A and B: shared
tables, dedicated schemas, dedicated databases on this server and another (tests/conftest.py)."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.db.models import Count, Prefetch

from tenants.context import no_tenant, tenant_context, unscoped
from tenants.exceptions import CrossTenantWrite, TenantNotSet, UnscopedAcrossPlacements
from tenants.models import Placement
from tests import dedicated
from tests.placement.support import rows_everywhere
from workflows.models import Workflow, WorkflowRun

pytestmark = [pytest.mark.django_db(databases=dedicated.DATABASES), pytest.mark.every_placement]


@pytest.fixture
def data(tenant_a, tenant_b):
    with tenant_context(tenant_a):
        a1 = Workflow.objects.create(name="a1")
        a2 = Workflow.objects.create(name="a2", status=Workflow.Status.ACTIVE)
        WorkflowRun.objects.create(workflow=a1)
        WorkflowRun.objects.create(workflow=a2)
    with tenant_context(tenant_b):
        b1 = Workflow.objects.create(name="b1")
        WorkflowRun.objects.create(workflow=b1)
    return {"a": tenant_a, "b": tenant_b, "a1": a1, "b1": b1}


def names(rows) -> set[str]:
    return {w.name for w in rows}


def _runs_of_first_workflow() -> set[str]:
    workflow = Workflow.objects.order_by("name").first()
    return {r.workflow.name for r in workflow.runs.all()}


def _forward_fk() -> set[str]:
    # The run is fetched in the test's tenant; its workflow is loaded lazily through the base
    # manager when the attribute is read, which is the access under test.
    return {run.workflow.name for run in WorkflowRun.objects.all()}


def _select_related() -> set[str]:
    return {run.workflow.name for run in WorkflowRun.objects.select_related("workflow")}


def _prefetch() -> set[str]:
    rows = Workflow.objects.prefetch_related(Prefetch("runs"))
    return {f"{w.name}:{len(w.runs.all())}" for w in rows}


# name -> (operation, expected for A, expected for B). Operations return comparable values.
READS = {
    "all": (lambda: names(Workflow.objects.all()), {"a1", "a2"}, {"b1"}),
    "filter": (lambda: names(Workflow.objects.filter(status="draft")), {"a1"}, {"b1"}),
    "exclude": (lambda: names(Workflow.objects.exclude(name="zzz")), {"a1", "a2"}, {"b1"}),
    "get": (lambda: Workflow.objects.get(name__startswith="a1").name, "a1", "DoesNotExist"),
    "first": (lambda: Workflow.objects.order_by("name").first().name, "a1", "b1"),
    "last": (lambda: Workflow.objects.order_by("name").last().name, "a2", "b1"),
    "latest": (lambda: Workflow.objects.latest("created_at", "id").name, "a2", "b1"),
    "earliest": (lambda: Workflow.objects.earliest("created_at", "id").name, "a1", "b1"),
    "exists": (lambda: Workflow.objects.filter(name="b1").exists(), False, True),
    "count": (lambda: Workflow.objects.count(), 2, 1),
    "aggregate": (lambda: Workflow.objects.aggregate(n=Count("id"))["n"], 2, 1),
    "annotate": (
        lambda: {w.name: w.n for w in Workflow.objects.annotate(n=Count("runs"))},
        {"a1": 1, "a2": 1},
        {"b1": 1},
    ),
    "values": (lambda: {v["name"] for v in Workflow.objects.values("name")}, {"a1", "a2"}, {"b1"}),
    "values_list": (
        lambda: set(Workflow.objects.values_list("name", flat=True)),
        {"a1", "a2"},
        {"b1"},
    ),
    "iterator": (lambda: names(Workflow.objects.iterator(chunk_size=1)), {"a1", "a2"}, {"b1"}),
    "in_bulk": (
        lambda: names(Workflow.objects.in_bulk().values()),
        {"a1", "a2"},
        {"b1"},
    ),
    "related_manager": (_runs_of_first_workflow, {"a1"}, {"b1"}),
    "forward_fk": (_forward_fk, {"a1", "a2"}, {"b1"}),
    "select_related": (_select_related, {"a1", "a2"}, {"b1"}),
    "prefetch_related": (_prefetch, {"a1:1", "a2:1"}, {"b1:1"}),
    "subquery": (
        lambda: set(
            WorkflowRun.objects.filter(workflow__in=Workflow.objects.all()).values_list(
                "workflow__name", flat=True
            )
        ),
        {"a1", "a2"},
        {"b1"},
    ),
    "dates": (lambda: len(Workflow.objects.dates("created_at", "day")), 1, 1),
}


async def _aiter_names():
    return {w.name async for w in Workflow.objects.all()}


async def _aget():
    try:
        return (await Workflow.objects.aget(name__startswith="a1")).name
    except Workflow.DoesNotExist:
        return "DoesNotExist"


async def _afirst():
    return (await Workflow.objects.order_by("name").afirst()).name


async def _aexists():
    return await Workflow.objects.filter(name="b1").aexists()


async def _acount():
    return await Workflow.objects.acount()


async def _aaggregate():
    return (await Workflow.objects.aaggregate(n=Count("id")))["n"]


async def _ain_bulk():
    return names((await Workflow.objects.ain_bulk()).values())


async def _arelated():
    workflow = await Workflow.objects.order_by("name").afirst()
    return {r.workflow_id == workflow.pk async for r in workflow.runs.all()}


ASYNC_READS = {
    "async_for": (_aiter_names, {"a1", "a2"}, {"b1"}),
    "aget": (_aget, "a1", "DoesNotExist"),
    "afirst": (_afirst, "a1", "b1"),
    "aexists": (_aexists, False, True),
    "acount": (_acount, 2, 1),
    "aaggregate": (_aaggregate, 2, 1),
    "ain_bulk": (_ain_bulk, {"a1", "a2"}, {"b1"}),
    "arelated_manager": (_arelated, {True}, {True}),
}


def run(operation):
    """Call a sync operation, or an async one through the real async ORM path."""
    import inspect

    if inspect.iscoroutinefunction(operation):
        return async_to_sync(operation)()
    try:
        return operation()
    except Workflow.DoesNotExist:
        return "DoesNotExist"


ALL_READS = {**READS, **ASYNC_READS}


@pytest.mark.parametrize("entry", sorted(ALL_READS))
def test_read_without_tenant_raises(data, entry):
    operation = ALL_READS[entry][0]
    if entry in ("forward_fk",):
        # Load the rows in a tenant, then touch the relation with none set.
        with tenant_context(data["a"]):
            runs = list(WorkflowRun.objects.all())
        with pytest.raises(TenantNotSet):
            [r.workflow for r in runs]
        return
    with no_tenant(), pytest.raises(TenantNotSet):
        run(operation)


@pytest.mark.parametrize("entry", sorted(ALL_READS))
@pytest.mark.parametrize("side", ["a", "b"])
def test_read_sees_only_its_tenant(data, entry, side):
    operation, expected_a, expected_b = ALL_READS[entry]
    with tenant_context(data[side]):
        assert run(operation) == (expected_a if side == "a" else expected_b)


def _counts(data) -> tuple[int, int, int, int]:
    """Rows per tenant of both models in every placement: with a tenant in a dedicated
    database (where unscoped() refuses) under each tenant, in its own database; else read the
    audited cross-tenant way (a row in the wrong schema counts too: tests/placement/support.py)."""
    if _any_dedicated(data):
        counts = {}
        for side in ("a", "b"):
            with tenant_context(data[side]):
                counts[side] = (Workflow.objects.count(), WorkflowRun.objects.count())
        return counts["a"][0], counts["b"][0], counts["a"][1], counts["b"][1]

    def count(table: str, tenant) -> int:
        return sum(
            len(rows)
            for (_, tenant_id), rows in rows_everywhere(table, "id").items()
            if tenant_id == tenant.pk
        )

    return (
        count("workflows_workflow", data["a"]),
        count("workflows_workflow", data["b"]),
        count("workflows_workflowrun", data["a"]),
        count("workflows_workflowrun", data["b"]),
    )


def _names_of(data, side) -> set[str]:
    with tenant_context(data[side]):
        return set(Workflow.objects.values_list("name", flat=True))


async def _aupdate():
    return await Workflow.objects.aupdate(description="x")


async def _adelete():
    return (await WorkflowRun.objects.all().adelete())[0]


async def _aget_or_create():
    return (await Workflow.objects.aget_or_create(name="new"))[1]


async def _aupdate_or_create():
    return (await Workflow.objects.aupdate_or_create(name="new", defaults={"description": "d"}))[1]


async def _abulk_create():
    return len(await Workflow.objects.abulk_create([Workflow(name="n1"), Workflow(name="n2")]))


async def _acreate():
    return (await Workflow.objects.acreate(name="new")).name


def _bulk_update():
    rows = list(Workflow.objects.all())
    for row in rows:
        row.description = "changed"
    return Workflow.objects.bulk_update(rows, ["description"])


WRITES = {
    "update": lambda: Workflow.objects.update(description="x"),
    "delete": lambda: WorkflowRun.objects.all().delete()[0],
    "get_or_create": lambda: Workflow.objects.get_or_create(name="new")[1],
    "update_or_create": lambda: Workflow.objects.update_or_create(
        name="new", defaults={"description": "d"}
    )[1],
    "create": lambda: Workflow.objects.create(name="new").name,
    "bulk_create": lambda: len(
        Workflow.objects.bulk_create([Workflow(name="n1"), Workflow(name="n2")])
    ),
    "bulk_update": _bulk_update,
    "save_new": lambda: Workflow(name="new").save(),
    "aupdate": _aupdate,
    "adelete": _adelete,
    "aget_or_create": _aget_or_create,
    "aupdate_or_create": _aupdate_or_create,
    "abulk_create": _abulk_create,
    "acreate": _acreate,
}


@pytest.mark.parametrize("entry", sorted(WRITES))
def test_write_without_tenant_raises_and_writes_nothing(data, entry):
    before = _counts(data)
    with no_tenant(), pytest.raises(TenantNotSet):
        run(WRITES[entry])
    assert _counts(data) == before


@pytest.mark.parametrize("entry", sorted(WRITES))
def test_write_under_a_touches_only_a(data, entry):
    b_before = _names_of(data, "b")
    _, wb, _, rb = _counts(data)
    with tenant_context(data["a"]):
        run(WRITES[entry])
    assert _names_of(data, "b") == b_before
    after = _counts(data)
    assert (after[1], after[3]) == (wb, rb)
    with tenant_context(data["b"]):
        assert set(Workflow.objects.values_list("description", flat=True)) == {""}


def test_saving_a_row_of_another_tenant_is_refused(data):
    with tenant_context(data["a"]):
        stranger = Workflow(name="planted", tenant=data["b"])
        with pytest.raises(CrossTenantWrite):
            stranger.save()
        with pytest.raises(CrossTenantWrite):
            Workflow.objects.bulk_create([Workflow(name="planted2", tenant=data["b"])])
        with pytest.raises(CrossTenantWrite):
            Workflow.objects.create(name="planted3", tenant_id=data["b"].pk)
    assert "planted" not in _names_of(data, "b") | _names_of(data, "a")


def test_moving_a_row_to_another_tenant_is_refused(data):
    with tenant_context(data["a"]):
        workflow = Workflow.objects.get(name="a1")
        workflow.tenant = data["b"]
        with pytest.raises(CrossTenantWrite):
            workflow.save()
        with pytest.raises(CrossTenantWrite):
            Workflow.objects.filter(name="a1").update(tenant=data["b"])
        with pytest.raises(CrossTenantWrite):
            Workflow.objects.bulk_update([workflow], ["tenant"])
    assert "a1" in _names_of(data, "a")
    assert "a1" not in _names_of(data, "b")


def test_a_loaded_row_saved_under_another_tenant_is_refused(data):
    with tenant_context(data["b"]):
        b1 = Workflow.objects.get(name="b1")
    with tenant_context(data["a"]):
        b1.description = "hijacked"
        with pytest.raises(CrossTenantWrite):
            b1.save()
    with tenant_context(data["b"]):
        assert Workflow.objects.get(name="b1").description == ""


def test_queryset_built_at_import_time_resolves_when_evaluated(data):
    from workflows.serializers import WorkflowRunSerializer

    queryset = WorkflowRunSerializer().fields["workflow"].queryset
    with no_tenant(), pytest.raises(TenantNotSet):
        list(queryset)
    with tenant_context(data["a"]):
        assert names(queryset.all()) == {"a1", "a2"}
    with tenant_context(data["b"]):
        assert names(queryset.all()) == {"b1"}


def test_tenant_context_nests_and_restores(data):
    with tenant_context(data["a"]):
        with tenant_context(data["b"]):
            assert names(Workflow.objects.all()) == {"b1"}
        assert names(Workflow.objects.all()) == {"a1", "a2"}
    with pytest.raises(TenantNotSet):
        Workflow.objects.count()


def test_unscoped_needs_a_reason_and_writes_an_audit_row(data, placements):
    from tenants.exceptions import BypassReasonRequired
    from tenants.models import AuditEvent

    for reason in ("", "   ", None):
        with pytest.raises(BypassReasonRequired), unscoped(reason=reason):
            pass
    before = AuditEvent.objects.filter(action="unscoped").count()
    with unscoped(reason="test: read both"):
        if placements != ("shared", "shared"):
            # Its grant opens the shared tables only: refused rather than half an answer
            # (docs/placement.md).
            with pytest.raises(UnscopedAcrossPlacements):
                Workflow.objects.count()
        else:
            assert names(Workflow.objects.all()) == {"a1", "a2", "b1"}
    events = AuditEvent.objects.filter(action="unscoped").order_by("-id")
    assert events.count() == before + 1
    assert events.first().reason == "test: read both"


def _any_dedicated(data) -> bool:
    return any(data[side].placement == Placement.DATABASE for side in ("a", "b"))


def test_unscoped_write_needs_an_explicit_tenant(data, placements):
    if placements != ("shared", "shared"):
        # It would land in the shared tables, not where b's rows are: refused, like any
        # cross-tenant work while a tenant has a dedicated placement.
        with unscoped(reason="test: write"):
            with pytest.raises((CrossTenantWrite, UnscopedAcrossPlacements)):
                Workflow.objects.create(name="orphan")
            with pytest.raises(UnscopedAcrossPlacements), transaction.atomic():
                Workflow.objects.create(name="placed", tenant=data["b"])
        assert "placed" not in _names_of(data, "b")
        return
    with unscoped(reason="test: write"):
        with pytest.raises(CrossTenantWrite):
            Workflow.objects.create(name="orphan")
        Workflow.objects.create(name="placed", tenant=data["b"])
    assert "placed" in _names_of(data, "b")


def test_raw_requires_a_tenant(data):
    with no_tenant(), pytest.raises(TenantNotSet):
        Workflow.objects.raw("SELECT * FROM workflows_workflow")


@pytest.mark.parametrize(
    "queryset",
    [
        lambda: WorkflowRun.objects.select_related("workflow"),  # forward join
        lambda: Workflow.objects.filter(runs__status="queued"),  # reverse join
    ],
    ids=["forward", "reverse"],
)
def test_a_join_between_tenant_tables_binds_both_to_the_tenant(data, queryset):
    """Both tables of the join carry the tenant in the ON clause, not only the table holding the
    key: Citus sends a join of colocated tables to one shard only when both are bound to a
    tenant value (docs/citus.md)."""
    a = data["a"]
    with tenant_context(a):
        sql = str(queryset().query)
    on_clause = sql.split(" ON ", 1)[1].split(" WHERE ", 1)[0]
    for table in ("workflows_workflow", "workflows_workflowrun"):
        assert re.search(rf'"{table}"\."tenant_id" = \(?{a.pk}\b', on_clause), sql
