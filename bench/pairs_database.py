"""Pairs 1-4: what the tenant manager, RLS, the per-transaction setting and tenant count cost."""

from __future__ import annotations

import itertools
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connections, models, transaction
from psycopg import pq

from accounts.admission import admit
from accounts.models import User
from accounts.providers import ProviderPolicy
from accounts.tokens import IssuerConfig, VerifiedToken
from bench.before_wall import base as before_wall
from bench.dataset import CROWDED_RANK, IDP, SERVED_RANK, Dataset
from bench.measure import Check, Row, Target, alternate, calibrate, interleave, per_op_seconds
from bench.profiling import profile_calls
from tenants.context import tenant_context
from tenants.models import Tenant
from workflows import selectors
from workflows.models import Workflow

NEWEST = ("-created_at", "-id")  # the list endpoint's order (workflows.pagination)
PAGE = 50
IN_TURN = "one call of each in turn (bench.measure.alternate)"


@dataclass(frozen=True)
class Plan:
    rounds: int
    batch_seconds: float


def _plain_manager(using: str | None = None) -> models.Manager:
    """Django's stock manager on Workflow, attached at run time (the model keeps its own)."""
    manager = models.Manager()
    manager.model = Workflow
    manager.name = "bench_plain"
    return manager.db_manager(using) if using else manager


def _tenant(alias: str, tenant_id: int) -> Tenant:
    return Tenant.objects.using(alias).get(pk=tenant_id)


def _pks(*, alias: str, tenant_id: int, limit: int = 500) -> list[int]:
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT id FROM workflows_workflow WHERE tenant_id = %s ORDER BY id LIMIT %s",
            [tenant_id, limit],
        )
        return [row[0] for row in cursor.fetchall()]


def pk_read(*, dataset: Dataset, plan: Plan) -> list[Row]:
    """Pair 1: Workflow.objects.get(pk=...) against a stock Manager on the same model.

    Both run as the runtime role in the same tenant, in autocommit (each statement carries the
    signed scope, as an API read does), so RLS and the scope are identical; the difference is
    the manager's `tenant_id = ...` and the Python that adds it.
    """
    tenant_id, _ = dataset.tenant_at_rank(SERVED_RANK)
    tenant = _tenant("default", tenant_id)
    pks = itertools.cycle(_pks(alias="owner", tenant_id=tenant_id))
    plain = _plain_manager()

    def scoped_get():
        return Workflow.objects.get(pk=next(pks))

    def plain_get():
        return plain.get(pk=next(pks))

    with tenant_context(tenant):
        count = calibrate(scoped_get, seconds=plan.batch_seconds)
        samples = alternate(
            {"scoped": scoped_get, "plain": plain_get}, rounds=plan.rounds, calls=count
        )
    rows = [
        Row(
            pair="1",
            title="PK read in autocommit: tenant manager vs stock Manager (runtime role, same "
            "tenant, scope and RLS)",
            ours_label="manager",
            base_label="plain",
            unit="us",
            ours=samples["scoped"],
            base=samples["plain"],
            target=Target(high=1.15),
            note=IN_TURN,
            extra={"calls_per_round": count},
        ),
    ]
    if rows[0].verdict == "MISS":
        with tenant_context(tenant):
            _attach_profile(rows[0], scoped_get, count=count, name="pair1")
    return rows


def _attach_profile(row: Row, operation: Callable[[], object], *, count: int, name: str) -> None:
    """Profile ours' side of a missed target and point the row's note at the call tree."""
    path = profile_calls(operation, count=count, name=name)
    row.extra["profile"] = str(path)
    row.note = "; ".join(filter(None, [row.note, f"profile of ours: {path.name}"]))


def _list_sql(tenant: Tenant) -> tuple[str, tuple]:
    """The list's page of workflows (without its owners, which a shared tenant's list joins:
    the design before the wall, pair 2w, could not read users under its policy)."""
    with tenant_context(tenant):
        query = selectors.workflow_list().select_related(None).order_by(*NEWEST)[:PAGE].query
        return query.sql_with_params()


def _bypasses_rls(alias: str) -> bool:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
        return bool(cursor.fetchone()[0])


def _fetch_all(alias: str, sql: str, params: tuple) -> list[tuple]:
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def list_under_rls(*, dataset: Dataset, plan: Plan) -> list[Row | Check]:
    """Pair 2: the list query's SQL as the runtime role (RLS) and as a role that bypasses it.

    Same SQL text, each statement in autocommit as the API's reads run: ours carries the signed
    scope in the statement's own message (tenants.db.backend) and PostgreSQL applies the
    policy; the baseline is the owner with Django's stock backend, which sends the bare SQL.
    So the ratio is everything the wall adds to a read: the scope, its verification, the policy.
    """
    tenant_id, size = dataset.tenant_at_rank(SERVED_RANK)
    tenant = _tenant("default", tenant_id)
    sql, params = _list_sql(tenant)
    if not _bypasses_rls("owner"):
        raise RuntimeError("the owner role neither is a superuser nor has BYPASSRLS")
    with tenant_context(tenant), transaction.atomic(using="default"):
        under_rls = _fetch_all("default", sql, params)
        plan_lines = [row[0] for row in _fetch_all("default", "EXPLAIN " + sql, params)]
    with tenant_context(tenant), transaction.atomic(using="owner"):
        bypassing = _fetch_all("owner", sql, params)
    if under_rls != bypassing or len(under_rls) != PAGE:
        raise RuntimeError("RLS and bypass sides returned different rows")

    prewall_sql = _prewall_sql(sql)
    with tenant_context(tenant):
        if _fetch_all(BEFORE_WALL, prewall_sql, params) != under_rls:
            raise RuntimeError("the pre-wall copy returned other rows than RLS")
        count = calibrate(lambda: _fetch_all("default", sql, params), seconds=plan.batch_seconds)
        samples = alternate(
            {
                "rls": lambda: _fetch_all("default", sql, params),
                "bypass": lambda: _fetch_all("owner", sql, params),
            },
            rounds=plan.rounds,
            calls=count,
        )
        designs = alternate(
            {
                "signed": lambda: _fetch_all("default", sql, params),
                "unsigned": lambda: _fetch_all(BEFORE_WALL, prewall_sql, params),
            },
            rounds=plan.rounds,
            calls=count,
        )
    index_lines = [line.strip() for line in plan_lines if "Index Cond" in line]
    on_tenant = any("tenant_id" in line for line in index_lines)
    return [
        Row(
            pair="2",
            title=f"list query in autocommit, 50 newest of a {size:,}-row tenant: signed scope "
            "and RLS vs the bare SQL as a BYPASSRLS role",
            ours_label="RLS",
            base_label="bypass",
            unit="us",
            ours=samples["rls"],
            base=samples["bypass"],
            target=Target(high=1.10),
            note=IN_TURN,
            extra={"sql": sql, "explain": plan_lines, "calls_per_round": count},
        ),
        Row(
            pair="2w",
            title="the same, signed scope vs the unsigned setting and policy from before the "
            "database wall (a copy of the table; that backend, bench.before_wall), called in "
            "turn",
            ours_label="signed",
            base_label="unsigned",
            unit="us",
            ours=designs["signed"],
            base=designs["unsigned"],
            target=Target(high=1.05),
            note=IN_TURN,
            extra={"calls_per_round": count},
        ),
        Check(
            pair="2",
            title="EXPLAIN of the list query under RLS uses the tenant index",
            observed=index_lines[0] if index_lines else "no Index Cond",
            expected="Index Cond on tenant_id",
            ok=on_tenant,
        ),
    ]


def _member_count(alias: str, tenant_id: int) -> int:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM accounts_membership WHERE tenant_id = %s", [tenant_id])
        return cursor.fetchone()[0]


def list_by_member_count(*, dataset: Dataset, plan: Plan) -> list[Row | Check]:
    """Pair 2m: the list's page with its owners, as a shared tenant's API reads it, for the
    tenant with thousands of members against the served tenant with a handful.

    The users' policy decides per user row whether the signed tenant may see it; what that
    costs must not grow with the tenant's member count. Both pages are 50 workflows of the
    same owner (homed in no tenant, a member of every one), so only the count differs."""
    sides = {}
    for name, rank in (("crowded", CROWDED_RANK), ("served", SERVED_RANK)):
        tenant_id, _ = dataset.tenant_at_rank(rank)
        tenant = _tenant("default", tenant_id)
        with tenant_context(tenant):
            query = selectors.workflow_list().order_by(*NEWEST)[:PAGE].query
            sql, params = query.sql_with_params()
            rows = _fetch_all("default", sql, params)
        if len(rows) != PAGE or any(row[-1] is None for row in rows):
            raise RuntimeError(f"the {name} tenant's page lacks rows or owners")
        sides[name] = (tenant, sql, params, _member_count(dataset.alias, tenant_id))

    def side(name: str) -> Callable[[], float]:
        tenant, sql, params, _ = sides[name]

        def run() -> float:
            with tenant_context(tenant):
                return per_op_seconds(lambda: _fetch_all("default", sql, params), count=count)

        return run

    tenant, sql, params, _ = sides["served"]
    with tenant_context(tenant):
        count = calibrate(lambda: _fetch_all("default", sql, params), seconds=plan.batch_seconds)
    samples = interleave({name: side(name) for name in sides}, rounds=plan.rounds)
    crowded, served = sides["crowded"][3], sides["served"][3]
    return [
        Row(
            pair="2m",
            title=f"the list's page with its owners in autocommit under RLS: a tenant with "
            f"{crowded:,} members vs one with {served:,}",
            ours_label=f"{crowded:,} members",
            base_label=f"{served:,} members",
            unit="us",
            ours=samples["crowded"],
            base=samples["served"],
            target=Target(high=1.25),
            note="target ours: a tenant's member count must not change what a page costs",
        )
    ]


# The design before the database wall (issue 9), rebuilt on a copy of the workflows table: the
# tenant as a plain setting any SQL could set, read by the policy, and sent in front of the
# statement in the same simple-protocol message by that design's backend (bench.before_wall)
# as the runtime role. Pairs 2w and 3w compare the signed scope with it.
BEFORE_WALL = "runtime_before_wall"
PREWALL_TABLE = "bench_prewall_workflow"
_prewall_made: set[str] = set()


def _prewall_sql(sql: str) -> str:
    """`sql` reading the copy made with the old policy. The copy is made once per run."""
    table = Workflow._meta.db_table
    if PREWALL_TABLE not in _prewall_made:
        runtime = connections["default"].settings_dict["USER"]
        with connections["owner"].cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {PREWALL_TABLE}")
            cursor.execute(f"CREATE TABLE {PREWALL_TABLE} (LIKE {table} INCLUDING ALL)")
            cursor.execute(f"INSERT INTO {PREWALL_TABLE} SELECT * FROM {table}")
            cursor.execute(f"ANALYZE {PREWALL_TABLE}")
            cursor.execute(f"ALTER TABLE {PREWALL_TABLE} ENABLE ROW LEVEL SECURITY")
            cursor.execute(f"ALTER TABLE {PREWALL_TABLE} FORCE ROW LEVEL SECURITY")
            cursor.execute(
                f"CREATE POLICY prewall ON {PREWALL_TABLE} USING (tenant_id = "
                f"(SELECT NULLIF(current_setting('{before_wall.SETTING}', true), '')::bigint))"
            )
            cursor.execute(f'GRANT SELECT ON {PREWALL_TABLE} TO "{runtime}"')
        _prewall_made.add(PREWALL_TABLE)
    copy = sql.replace(f'"{table}"', f'"{PREWALL_TABLE}"')
    if copy == sql:
        raise RuntimeError(f"the query does not name {table}")
    return copy


def per_request_context(*, dataset: Dataset, plan: Plan) -> list[Row]:
    """Pair 3: tenant context + transaction + set_config + the read, against a plain read.

    Ours: what a request pays, through the tenancy backend as the runtime role (BEGIN, the
    tenant setting with the scoped query, COMMIT). Baseline: the same read by key with Django's
    stock backend and manager as the owner, in autocommit, without a tenant (one round trip).
    """
    tenant_id, _ = dataset.tenant_at_rank(SERVED_RANK)
    pks = itertools.cycle(_pks(alias="owner", tenant_id=tenant_id))
    tenants = {"default": _tenant("default", tenant_id)}
    plain = _plain_manager("plain")

    def request_like(alias: str, manager) -> Callable[[], object]:
        tenant = tenants[alias]

        def run():
            with tenant_context(tenant), transaction.atomic(using=alias):
                return manager.get(pk=next(pks))

        return run

    def autocommit_read():
        # By its key, which is (tenant_id, id) in this schema: by id alone PostgreSQL would
        # scan the table (no index on id by itself), which is not what an application
        # without tenancy pays for its key lookup.
        return plain.get(tenant_id=tenant_id, pk=next(pks))

    scoped = Workflow.objects.db_manager("default")

    def autocommit_in_tenant():
        with tenant_context(tenants["default"]):
            return scoped.get(pk=next(pks))

    token, policy = _identity_in(tenant_id=tenant_id)

    def admitted_read():
        # What a request whose token is not in the admission cache pays: the admission query
        # (membership, user and tenant in one), then the read under the tenant it admitted.
        principal = admit(token=token, policy=policy, via="bearer")
        with tenant_context(principal.tenant):
            return scoped.get(pk=next(pks))

    # The same transaction with the same SQL (no ORM on either side), signed and unsigned.
    key_sql = f'SELECT * FROM "{Workflow._meta.db_table}" WHERE tenant_id = %s AND id = %s'
    prewall_key_sql = _prewall_sql(key_sql)

    def signed_transaction():
        with tenant_context(tenants["default"]), transaction.atomic(using="default"):
            return _fetch_all("default", key_sql, (tenant_id, next(pks)))

    def unsigned_transaction():
        with tenant_context(tenants["default"]), transaction.atomic(using=BEFORE_WALL):
            return _fetch_all(BEFORE_WALL, prewall_key_sql, (tenant_id, next(pks)))

    pk = next(pks)
    with tenant_context(tenants["default"]):
        signed_row = _fetch_all("default", key_sql, (tenant_id, pk))
        unsigned_row = _fetch_all(BEFORE_WALL, prewall_key_sql, (tenant_id, pk))
    if len(signed_row) != 1 or unsigned_row != signed_row:
        raise RuntimeError("the signed and the pre-wall reads returned other rows")

    sides = {
        "ours": request_like("default", Workflow.objects.db_manager("default")),
        "plain": autocommit_read,
        "autocommit_tenant": autocommit_in_tenant,
        "admitted": admitted_read,
    }
    count = calibrate(sides["ours"], seconds=plan.batch_seconds)
    samples = interleave(
        {name: _batch(op, count) for name, op in sides.items()}, rounds=plan.rounds
    )
    designs = alternate(
        {"signed": signed_transaction, "unsigned": unsigned_transaction},
        rounds=plan.rounds,
        calls=count,
    )
    round_trips = {
        "context": _round_trips(sides["ours"], alias="default"),
        "autocommit": _round_trips(autocommit_read, alias="plain"),
        "tenant in autocommit": _round_trips(autocommit_in_tenant, alias="default"),
        "admission and read": _round_trips(admitted_read, alias="default"),
        "signed": _round_trips(signed_transaction, alias="default"),
        "unsigned (before the wall)": _round_trips(unsigned_transaction, alias=BEFORE_WALL),
    }
    trips = ", ".join(f"{name} {n}" for name, n in round_trips.items())
    rows = [
        Row(
            pair="3",
            title="per-request tenant context (atomic + set_config + read) vs autocommit read",
            ours_label="context",
            base_label="autocommit",
            unit="us",
            ours=samples["ours"],
            base=samples["plain"],
            target=Target(high=1.25),
            note=f"round trips per call: {trips}",
            extra={"round_trips": round_trips, "calls_per_batch": count},
        ),
        Row(
            pair="3d",
            title="tenant context without a transaction (autocommit: set_config + read in one message)",
            ours_label="context",
            base_label="autocommit",
            unit="us",
            ours=samples["autocommit_tenant"],
            base=samples["plain"],
            target=Target(high=1.25),
        ),
        Row(
            pair="3w",
            title="one read by key in a transaction, same SQL: signed scope vs the unsigned "
            "setting and policy from before the database wall (that backend, "
            "bench.before_wall: the prefix in the statement's message), called in turn",
            ours_label="signed",
            base_label="unsigned",
            unit="us",
            ours=designs["signed"],
            base=designs["unsigned"],
            target=Target(high=1.05),
            note=IN_TURN,
        ),
        Row(
            pair="3e",
            title="admission of a token not in the cache (one query) + the read, autocommit",
            ours_label="admitted",
            base_label="autocommit",
            unit="us",
            ours=samples["admitted"],
            base=samples["plain"],
        ),
    ]
    if rows[0].verdict == "MISS":
        _attach_profile(rows[0], sides["ours"], count=count, name="pair3")
    return rows


def _identity_in(*, tenant_id: int) -> tuple[VerifiedToken, ProviderPolicy]:
    """A verified token of a member of the tenant from the dataset's identity directory, and
    a platform-wide policy for its issuer."""
    user = User.objects.using("owner").filter(home_tenant_id=tenant_id, issuer=IDP).first()
    tenant = Tenant.objects.using("owner").get(pk=tenant_id)
    token = VerifiedToken(
        issuer=IDP,
        subject=user.subject,
        audience="bench",
        claims={},
        tenant_external_id=tenant.external_id,
        roles=(),
        email=None,
        name=None,
        expires_at=int(time.time()) + 3600,
    )
    config = IssuerConfig(issuer=IDP, audiences=("bench",), tenant_claim="org")
    return token, ProviderPolicy(config=config, label="bench")


def _batch(operation: Callable[[], object], count: int) -> Callable[[], float]:
    return lambda: per_op_seconds(operation, count=count)


def _round_trips(operation: Callable[[], object], *, alias: str) -> int:
    """Round trips one call makes: libpq's protocol trace, counting Query and Sync messages."""
    connections[alias].ensure_connection()
    pgconn = connections[alias].connection.pgconn
    with tempfile.TemporaryFile() as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            operation()
        finally:
            pgconn.untrace()
        trace.seek(0)
        lines = trace.read().decode(errors="replace").splitlines()
    return sum(1 for line in lines if re.match(r"F\s+\d+\s+(Query|Sync)\b", line))


def tenant_count(*, main: Dataset, small: Dataset, plan: Plan) -> list[Row]:
    """Pair 4: the list query at 10,000 and at 1,000 tenants (same rows), and big vs median."""

    def list_page(alias: str, tenant: Tenant) -> Callable[[], float]:
        manager = Workflow.objects.db_manager(alias)

        def page():
            return list(manager.select_related("owner").order_by(*NEWEST)[:PAGE])

        def run() -> float:
            with tenant_context(tenant), transaction.atomic(using=alias):
                return per_op_seconds(page, count=count)

        with tenant_context(tenant), transaction.atomic(using=alias):
            rows = len(page())
        return run, page, rows

    # Equal size rank in both datasets, so each side returns a full page of 50 rows.
    many_id, many_size = main.tenant_at_rank(SERVED_RANK)
    few_id, few_size = small.tenant_at_rank(SERVED_RANK)
    many, many_page, _ = list_page("default", _tenant("default", many_id))
    few, _, _ = list_page("runtime_1k", _tenant("runtime_1k", few_id))
    with tenant_context(_tenant("default", many_id)), transaction.atomic():
        count = calibrate(many_page, seconds=plan.batch_seconds)
    samples = interleave({"10k": many, "1k": few}, rounds=plan.rounds)

    median_rank = main.spec.tenants // 2
    top_id, top_size = main.tenant_at_rank(5)
    mid_id, mid_size = main.tenant_at_rank(median_rank)
    top, _, top_rows = list_page("default", _tenant("default", top_id))
    mid, _, mid_rows = list_page("default", _tenant("default", mid_id))
    spread = interleave({"top": top, "median": mid}, rounds=plan.rounds)
    return [
        Row(
            pair="4",
            title=(
                f"list query at {main.spec.tenants:,} vs {small.spec.tenants:,} tenants, "
                f"{main.spec.rows:,} rows each (tenants of rank {SERVED_RANK}: "
                f"{many_size:,} and {few_size:,} rows)"
            ),
            ours_label=f"{main.spec.tenants // 1000}k",
            base_label=f"{small.spec.tenants // 1000}k",
            unit="us",
            ours=samples["10k"],
            base=samples["1k"],
            target=Target(low=0.90, high=1.10),
            extra={"calls_per_batch": count},
        ),
        Row(
            pair="4b",
            title=(
                f"list query, top-10 tenant ({top_size:,} rows) vs median tenant "
                f"({mid_size:,} rows)"
            ),
            ours_label="top-10",
            base_label="median",
            unit="us",
            ours=spread["top"],
            base=spread["median"],
            note=(
                f"the median tenant's page has {mid_rows} rows and the top tenant's {top_rows}: "
                "the cost follows the rows returned, not the tenant's size"
            ),
            extra={"median_of_medians_us": statistics.median(spread["median"]) * 1e6},
        ),
    ]
