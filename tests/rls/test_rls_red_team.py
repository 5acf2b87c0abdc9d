"""Red team: SQL sent as the runtime role tries to leave its tenant (THREATS 34-37, issue 9).

Everything here is SQL the application could be made to send (an injection, a library's own
SQL, `manage.py shell` on a web host): through Django's connection under tenant A, and straight
at PostgreSQL on a plain psycopg connection as the runtime role, directly and through PgBouncer
in transaction mode. Each attempt must give zero rows of B, or be refused, and write nothing.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from accounts.models import IdentityProvider, Membership, User
from accounts.sessions import SessionStore
from tenants.audit import record_event
from tenants.context import no_tenant, tenant_context, unscoped
from tenants.db.signing import DatabaseScope, scope_value, signed_fields
from tests.conftest import make_member
from tests.placement.support import path_of
from tests.rls.support import (
    COMMITTED,
    connection_kwargs,
    owner_execute,
    pgbouncer,
    rows_by_tenant,
    server_address,
)

pytestmark = [COMMITTED, pytest.mark.every_placement(databases=False)]

BREAKGLASS = settings.TENANCY_BREAKGLASS_ROLE
SIGNED = re.compile(r"[tgb]:[0-9]+:[0-9]+:[0-9]+:[0-9a-f]{64}")
B_ROWS = "SELECT count(*) FROM workflows_workflow WHERE tenant_id = %s"


def fetch(sql: str, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def genuine_value(tenant, *, pid: int = 0, ttl: int = 300, now: float | None = None) -> str:
    """A value signed with the application's key: what a leak of one would hand an attacker."""
    return scope_value(DatabaseScope("t", tenant.pk), backend_pid=pid, ttl_seconds=ttl, now=now)[0]


def _flip_last(value: str) -> str:
    return value[:-1] + ("1" if value[-1] == "0" else "0")


@contextmanager
def runtime_connection(via: str) -> Iterator[psycopg.Connection]:
    """A plain psycopg connection as the runtime role: direct, or through PgBouncer."""
    if via == "direct":
        conn = psycopg.connect(**connection_kwargs(as_owner=False), autocommit=True)
        try:
            yield conn
        finally:
            conn.close()
        return
    with pgbouncer(pool_size=1) as port:
        kwargs = {**connection_kwargs(as_owner=False), "host": "127.0.0.1", "port": port}
        conn = psycopg.connect(**kwargs, autocommit=True, prepare_threshold=None)
        try:
            yield conn
        finally:
            conn.close()


VIAS = ["direct", pytest.param("pgbouncer", marks=pytest.mark.pgbouncer)]


# --- forged and replayed scope values ---------------------------------------------------------


@pytest.mark.parametrize("via", VIAS)
def test_forged_scope_values_read_nothing(two_tenants, via):
    b = two_tenants["b"]
    forged = [
        str(b.pk),  # the old, unsigned form
        f"t:{b.pk}:0:9999999999:{'0' * 64}",  # the signed form with a made-up signature
        f"t:{b.pk}:0:9999999999",  # no signature
        f"g:0:0:9999999999:{'f' * 64}",  # the global scope, unsigned
        genuine_value(b, now=time.time() - 3600),  # genuine but expired
        genuine_value(b, pid=1),  # genuine but bound to another backend
        _flip_last(genuine_value(b)),  # one character of the signature changed
    ]
    with runtime_connection(via) as conn:
        # The attacker points its session at B's tables, wherever B is placed.
        conn.execute(f"SET search_path = {path_of(b)}")
        for value in forged:
            for local in (True, False):
                with conn.transaction():
                    conn.execute("SELECT set_config('app.scope', %s, %s)", [value, not local])
                    assert conn.execute(B_ROWS, [b.pk]).fetchone() == (0,), value
                    assert conn.execute("SELECT count(*) FROM tenants_tenant").fetchone() == (0,)
            conn.execute(f"SET app.scope = '{value}'")
            assert conn.execute(B_ROWS, [b.pk]).fetchone() == (0,), value
            conn.execute("RESET app.scope")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(
                    "INSERT INTO workflows_workflow (tenant_id, name, definition, status, "
                    "created_at, updated_at) VALUES (%s, 'x', '{}', 'draft', now(), now())",
                    [b.pk],
                )
    assert rows_by_tenant() == {two_tenants["a"].pk: 2, b.pk: 2}


def test_a_genuine_value_of_another_connection_is_useless_here(two_tenants):
    """Bound to the backend that was meant to use it: copied to another session, it fails."""
    b = two_tenants["b"]
    with runtime_connection("direct") as victim, runtime_connection("direct") as thief:
        value = genuine_value(b, pid=_bound_pid(victim))
        with victim.transaction():
            _set_scope(victim, value)
            if not settings.TENANCY_CITUS:  # no dedicated schemas there
                # As the application does: then the search path of B's placement.
                victim.execute(
                    "SELECT set_config('search_path', ameide_private.scope_search_path(), true)"
                )
            assert victim.execute(B_ROWS, [b.pk]).fetchone() == (2,)
        with thief.transaction():
            _set_scope(thief, value)
            if not settings.TENANCY_CITUS and b.placement == "schema":
                # The routing function refuses a value it does not accept for a dedicated
                # schema (a shared tenant's gets the home schema: its policies check the value)
                with pytest.raises(psycopg.errors.InsufficientPrivilege), thief.transaction():
                    thief.execute("SELECT ameide_private.scope_search_path()")
            if not settings.TENANCY_CITUS:
                # ...and pointing the session at B's tables by hand reads nothing.
                thief.execute(f"SET LOCAL search_path = {path_of(b)}")
            assert thief.execute(B_ROWS, [b.pk]).fetchone() == (0,)


def _bound_pid(conn: psycopg.Connection) -> int:
    """The pid the app binds a value to: on Citus the global pid, which the workers serving
    this backend report too (tenants.db.backend)."""
    if settings.TENANCY_CITUS:
        return conn.execute("SELECT citus_backend_gpid()").fetchone()[0]
    return conn.info.backend_pid


def _set_scope(conn: psycopg.Connection, value: str) -> None:
    """Set the scope for the transaction as the app does: on Citus also by SET LOCAL, the form
    Citus passes on to the workers."""
    conn.execute("SELECT set_config('app.scope', %s, true)", [value])
    if settings.TENANCY_CITUS:
        conn.execute("SET LOCAL citus.propagate_set_commands = 'local'")
        conn.execute(f"SET LOCAL app.scope = '{value}'")


def test_pg_stat_activity_shows_no_values_of_other_tenants(two_tenants):
    """Parameters are bound by the server: a live statement of B shows `$1`, never B's data or
    B's signed scope, to anyone who can read pg_stat_activity (the runtime role sees its own)."""
    b = two_tenants["b"]
    secret = "bravo-secret-name-7c1e"
    started, release = threading.Event(), threading.Event()

    def b_request():
        try:
            with tenant_context(b), transaction.atomic():
                fetch("SELECT pg_sleep(0) FROM workflows_workflow WHERE name = %s", [secret])
                started.set()
                # A long statement of B, with B's value in a parameter.
                fetch("SELECT pg_sleep(1.5), %s::text", [secret])
        finally:
            connection.close()

    worker = threading.Thread(target=b_request)
    worker.start()
    try:
        assert started.wait(10)
        time.sleep(0.3)
        with runtime_connection("direct") as spy:
            texts = [
                row[0]
                for row in spy.execute(
                    "SELECT query FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                    "AND usename = current_user"
                ).fetchall()
            ]
    finally:
        release.set()
        worker.join()
    assert any("pg_sleep(1.5)" in text for text in texts), texts
    assert not any(secret in text for text in texts), texts
    assert not any(SIGNED.search(text) for text in texts), texts


# --- statements that do not start with SELECT ------------------------------------------------


STATEMENT_FORMS = {
    "leading comment": "/* x */ SELECT count(*) FROM workflows_workflow WHERE tenant_id = {b}",
    "line comment": "-- x\nSELECT count(*) FROM workflows_workflow WHERE tenant_id = {b}",
    "prepared": "EXECUTE leak_b",
    "create table as": "CREATE TEMP TABLE stolen AS SELECT * FROM workflows_workflow "
    "WHERE tenant_id = {b}",
    # The count first, then set_config in a statement of its own: on Citus a statement that
    # reads one tenant's shard runs whole on that worker, set_config too, so the one-statement
    # form would set app.stolen in the worker's session, out of this test's sight.
    "do block": "DO $$ DECLARE n bigint; BEGIN SELECT count(*) INTO n FROM workflows_workflow "
    "WHERE tenant_id = {b}; PERFORM set_config('app.stolen', n::text, false); END $$",
    "values": "VALUES ((SELECT count(*) FROM workflows_workflow WHERE tenant_id = {b}))",
    "table": "TABLE workflows_workflow",
}


@pytest.mark.parametrize("form", list(STATEMENT_FORMS))
def test_every_statement_form_carries_the_tenant(two_tenants, form):
    """B's genuine signed value is planted at session level on the connection, as an earlier
    request of B's could leave it; A's request then sends each statement form."""
    a, b = two_tenants["a"], two_tenants["b"]
    with tenant_context(b), transaction.atomic():
        planted = fetch("SELECT current_setting('app.scope')")[0][0]
    with tenant_context(a):
        fetch("SELECT set_config('app.scope', %s, false)", [planted])
        if form == "prepared":
            fetch(
                f"PREPARE leak_b AS SELECT count(*) FROM workflows_workflow WHERE tenant_id = {b.pk}"
            )
        sql = STATEMENT_FORMS[form].format(b=b.pk)
        with transaction.atomic():
            rows = fetch(sql)
            if form == "create table as":
                rows = fetch("SELECT count(*) FROM stolen")
            if form == "do block":
                rows = fetch("SELECT current_setting('app.stolen')")
        flat = [value for row in rows for value in row]
        if form == "table":
            assert len(rows) == 2  # A's two workflows, none of B's
        else:
            assert flat in ([0], ["0"]), (form, rows)
    connection.close()


def test_several_statements_in_one_string_are_refused(two_tenants):
    a, b = two_tenants["a"], two_tenants["b"]
    with tenant_context(a):
        for sql in (
            f"COMMIT; SELECT count(*) FROM workflows_workflow WHERE tenant_id = {b.pk}",
            f"SELECT 1; SELECT count(*) FROM workflows_workflow WHERE tenant_id = {b.pk}",
        ):
            with pytest.raises(DatabaseError, match="multiple commands"):
                fetch(sql)


# --- roles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("via", VIAS)
def test_role_switches_gain_nothing(two_tenants, via):
    b = two_tenants["b"]
    owner = owner_execute("SELECT tableowner FROM pg_tables WHERE tablename = 'workflows_workflow'")
    with runtime_connection(via) as conn:
        # The break-glass role without a grant: its policy admits nothing. On Citus the role
        # does not even reach the workers (it cannot log in, and Citus connects as it).
        with conn.transaction():
            conn.execute(f"SET LOCAL ROLE {BREAKGLASS}")
            assert conn.execute("SELECT count(*) FROM tenants_auditevent").fetchone() == (0,)
            if settings.TENANCY_CITUS:
                with pytest.raises(psycopg.errors.ConnectionFailure, match="not permitted"):
                    conn.execute(B_ROWS, [b.pk])
            else:
                assert conn.execute(B_ROWS, [b.pk]).fetchone() == (0,)
        for statement in (
            f'SET ROLE "{owner[0][0]}"',
            f'SET SESSION AUTHORIZATION "{owner[0][0]}"',
            "SET ROLE postgres",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        conn.execute("RESET ROLE")
        assert conn.execute(B_ROWS, [b.pk]).fetchone() == (0,)


# --- the audit log and break-glass -------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO tenants_auditevent (at, actor, acting_as, action, tenant_slug, reason, "
        "request_id, details, txid, pid) VALUES (now(), 'x', '', 'unscoped', '', 'forged', '', "
        "'{}', txid_current(), pg_backend_pid())",
        "UPDATE tenants_auditevent SET reason = 'rewritten'",
        "DELETE FROM tenants_auditevent",
        "TRUNCATE tenants_auditevent",
        "SELECT * FROM ameide_private.scope_key",
        "SELECT ameide_private.mac_of('t:1:0:9999999999')",
        "INSERT INTO ameide_private.breakglass_grant (nonce, pid, audit_id, expires_at) "
        "VALUES ('x', pg_backend_pid(), 1, now() + interval '1 hour')",
    ],
)
@pytest.mark.parametrize("role", ["runtime", "breakglass"])
def test_the_app_cannot_write_history_or_read_the_key(two_tenants, statement, role):
    with unscoped(reason="test: an audit row to protect"):
        pass
    before = owner_execute("SELECT id, action, reason FROM tenants_auditevent ORDER BY id")
    with (
        runtime_connection("direct") as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
        conn.transaction(),
    ):
        if role == "breakglass":
            conn.execute(f"SET LOCAL ROLE {BREAKGLASS}")
        conn.execute(statement)
    assert owner_execute("SELECT id, action, reason FROM tenants_auditevent ORDER BY id") == before


def test_the_signed_entry_points_refuse_what_the_app_did_not_sign(two_tenants):
    a = two_tenants["a"]
    before = owner_execute("SELECT count(*) FROM tenants_auditevent")
    expires = int(time.time()) + 600
    with runtime_connection("direct") as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not signed"):
            conn.execute(
                "SELECT * FROM ameide_private.record_audit('x', 'forger', '', %s, '', '', '', "
                "'{}', %s)",
                [a.pk, "0" * 64],
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="not signed"):
            conn.execute(
                "SELECT ameide_private.open_breakglass('forger', 'because', NULL, '', '', %s, "
                "'n1', %s)",
                [expires, "0" * 64],
            )
        # A genuine audit signature used for a break-glass row: refused too.
        fields = ["unscoped", "forger", "", a.pk, "", "r", "", "{}"]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "SELECT * FROM ameide_private.record_audit(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [*fields, signed_fields("audit", *fields)],
            )
        # A genuine break-glass request works once; its replay (same nonce) is refused.
        # (A nonce of this run: the suite runs once per placement, grants are never flushed.)
        request = ["ops", "ticket 7", None, "", "", expires, f"nonce-replayed-{uuid.uuid4()}"]
        mac = signed_fields("breakglass", *request)
        conn.execute(
            "SELECT ameide_private.open_breakglass(%s, %s, %s, %s, %s, %s, %s, %s)", [*request, mac]
        )
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "SELECT ameide_private.open_breakglass(%s, %s, %s, %s, %s, %s, %s, %s)",
                [*request, mac],
            )
    assert owner_execute("SELECT count(*) FROM tenants_auditevent")[0][0] == before[0][0] + 1


def test_a_rolled_back_unscoped_block_keeps_its_audit_row(two_tenants, placements):
    count = "SELECT count(*) FROM tenants_auditevent WHERE action = 'unscoped' AND reason = %s"
    with pytest.raises(RuntimeError), unscoped(reason="test: rolled back"):
        # Raw SQL inside unscoped() reads the shared tables (docs/placement.md).
        shared_rows = 2 * placements.count("shared")
        assert fetch("SELECT count(*) FROM workflows_workflow") == [(shared_rows,)]
        raise RuntimeError("the work fails")
    assert owner_execute(count, ["test: rolled back"]) == [(1,)]
    row = owner_execute(
        "SELECT pid, txid, at <= now() FROM tenants_auditevent WHERE reason = 'test: rolled back'"
    )[0]
    assert row[0] > 0 and row[1] > 0 and row[2]
    # The grant is closed once the block ends: its signed scope opens nothing any more.
    closed = owner_execute(
        "SELECT closed_at IS NOT NULL FROM ameide_private.breakglass_grant ORDER BY id DESC LIMIT 1"
    )
    assert closed == [(True,)]


def test_a_grant_inside_an_outer_transaction_is_committed_first(two_tenants, placements):
    # Raw SQL inside unscoped() reads the shared tables (docs/placement.md).
    shared = placements.count("shared")
    with pytest.raises(RuntimeError), transaction.atomic():
        with unscoped(reason="test: inside a request transaction"):
            assert fetch("SELECT count(DISTINCT tenant_id) FROM workflows_workflow") == [(shared,)]
        raise RuntimeError("the request fails after the block")
    assert owner_execute(
        "SELECT count(*) FROM tenants_auditevent WHERE reason = 'test: inside a request transaction'"
    ) == [(1,)]


def test_a_closed_grants_scope_opens_nothing(two_tenants, placements):
    """The block's own signed value, replayed on its own connection (so bound to the right
    backend) once the block is over: the grant it names is closed, on every node."""
    with unscoped(reason="test: keep the value"):
        value = fetch("SELECT current_setting('app.scope')")[0][0]
        # Raw SQL in unscoped() reads the shared tables: two rows of each shared tenant.
        assert fetch("SELECT count(*) FROM workflows_workflow") == [
            (2 * placements.count("shared"),)
        ]
    assert SIGNED.fullmatch(value) and value.startswith("b:")
    with no_tenant(), transaction.atomic():
        if not settings.TENANCY_CITUS:
            fetch(f"SET LOCAL ROLE {BREAKGLASS}")  # on Citus break-glass needs no role
        fetch("SELECT set_config('app.scope', %s, true)", [value])
        # SET LOCAL is what Citus passes on to the workers (the app's own form there).
        fetch(f"SET LOCAL app.scope = '{value}'")
        assert fetch("SELECT count(*) FROM workflows_workflow") == [(0,)]


def _nodes() -> list[tuple[str, int]]:
    """Every server holding the database: on Citus the coordinator and each worker."""
    if not settings.TENANCY_CITUS:
        return [server_address()]
    return owner_execute(
        "SELECT nodename, nodeport FROM pg_dist_node WHERE noderole = 'primary' ORDER BY nodeid"
    )


def _grant_tables(node: tuple[str, int]) -> list[str]:
    """The grant table and, on Citus, the node's own copy of it (the shard the verifier
    reads by name)."""
    tables = ["ameide_private.breakglass_grant"]
    if settings.TENANCY_CITUS:
        kwargs = {**connection_kwargs(as_owner=True), "host": node[0], "port": node[1]}
        with psycopg.connect(**kwargs, autocommit=True) as conn:
            shards = conn.execute(
                "SELECT shardid FROM pg_dist_shard "
                "WHERE logicalrelid = 'ameide_private.breakglass_grant'::regclass"
            ).fetchall()
        tables += [f"ameide_private.breakglass_grant_{shard}" for (shard,) in shards]
    return tables


def _counts_on_every_node(value: str) -> dict[tuple, tuple]:
    """Rows of workflows_workflow that `value` admits, read as the runtime role straight at
    each node (on Citus claiming the global pid the value is bound to, and reading the
    worker's shards themselves): {(node, table): (count,)}."""
    counts = {}
    for node in _nodes():
        kwargs = {**connection_kwargs(as_owner=False), "host": node[0], "port": node[1]}
        if settings.TENANCY_CITUS:
            kwargs["application_name"] = f"citus_internal gpid={value.split(':')[2]}"
        with psycopg.connect(**kwargs, autocommit=True) as conn, conn.transaction():
            _set_scope(conn, value)
            shards = conn.execute(
                "SELECT c.oid::regclass::text FROM pg_class c "
                "WHERE c.relname ~ '^workflows_workflow_[0-9]+$'"
            ).fetchall()
            for (table,) in [("workflows_workflow",), *shards]:
                try:
                    with conn.transaction():
                        counts[(node, table)] = conn.execute(
                            f"SELECT count(*) FROM {table}"
                        ).fetchone()
                except psycopg.errors.InternalError_:
                    # A session claiming a Citus global pid is refused distributed queries.
                    assert settings.TENANCY_CITUS and table == "workflows_workflow"
    return counts


def test_a_closed_grant_cannot_be_reopened_or_replayed_on_any_node(two_tenants):
    """As the runtime role, straight at every node (on Citus each worker too): no grant row
    can be written or reopened, and the closed grant's genuine value reads nothing."""
    with unscoped(reason="test: a grant to reopen"):
        value = fetch("SELECT current_setting('app.scope')")[0][0]
        while_open = _counts_on_every_node(value)
    if settings.TENANCY_CITUS:
        # The control, and the limit docs/citus.md states: while the grant is open, its value
        # read on a worker by a session that logs in there and claims the global pid works.
        assert sum(count for (count,) in while_open.values()) == 4
    else:
        assert set(while_open.values()) == {(0,)}  # bound to the block's backend
    grant = int(value.split(":")[1])
    for node in _nodes():
        kwargs = {**connection_kwargs(as_owner=False), "host": node[0], "port": node[1]}
        for table in _grant_tables(node):
            for statement in (
                f"UPDATE {table} SET closed_at = NULL WHERE id = {grant}",
                f"INSERT INTO {table} (id, nonce, pid, audit_id, expires_at) VALUES "
                f"({grant + 1000}, 'x', 1, 1, now() + interval '1 hour')",
            ):
                with (
                    psycopg.connect(**kwargs, autocommit=True) as conn,
                    pytest.raises(psycopg.errors.InsufficientPrivilege),
                ):
                    conn.execute(statement)
    after = _counts_on_every_node(value)
    assert after.keys() == while_open.keys()
    assert set(after.values()) == {(0,)}, after
    assert owner_execute(
        "SELECT closed_at IS NOT NULL FROM ameide_private.breakglass_grant WHERE id = %s",
        [grant],
    ) == [(True,)]
    assert rows_by_tenant() == {two_tenants["a"].pk: 2, two_tenants["b"].pk: 2}


# --- global tables -----------------------------------------------------------------------------


def test_global_tables_under_a_tenant_show_only_that_tenant(two_tenants):
    a, b = two_tenants["a"], two_tenants["b"]
    ann = make_member(tenant=a, username="ann-red")
    make_member(tenant=b, username="bob-red")
    with no_tenant():
        IdentityProvider.objects.create(
            name="B's realm",
            issuer="https://sso.example.com/realms/bravo",
            audience="api",
            client_secret="s3cret",
        )
        record_event(action="test.b", tenant=b)
        record_event(action="test.a", tenant=a)
        store = SessionStore()
        store["who"] = "bob"
        store.create()
        session_key = store.session_key
    with tenant_context(a):
        assert fetch("SELECT array_agg(slug) FROM tenants_tenant") == [(["alpha"],)]
        assert {r[0] for r in fetch("SELECT username FROM accounts_user")} == {"ann-red"}
        assert fetch("SELECT count(*) FROM accounts_user WHERE password <> ''")[0][0] <= 1
        assert fetch("SELECT count(*) FROM accounts_identityprovider") == [(0,)]
        assert fetch("SELECT count(*) FROM accounts_identityprovidertenant") == [(0,)]
        assert fetch("SELECT count(*) FROM accounts_session") == [(0,)]
        assert {r[0] for r in fetch("SELECT DISTINCT tenant_id FROM tenants_auditevent")} <= {a.pk}
        assert {r[0] for r in fetch("SELECT tenant_id FROM accounts_membership")} == {a.pk}
        assert fetch("SELECT count(*) FROM django_migrations") != [(0,)]
        # Writes to global rows of others are refused or touch nothing.
        assert (
            fetch("UPDATE accounts_user SET is_superuser = true WHERE username = 'bob-red'") == []
        )
        with pytest.raises(DatabaseError), transaction.atomic():
            fetch("INSERT INTO accounts_session VALUES ('k', 'e30=', now() + interval '1 day')")
    with no_tenant():
        assert User.objects.get(username="bob-red").is_superuser is False
        assert User.objects.get(pk=ann.pk).username == "ann-red"
    # The session table holds a hash of the key, never the cookie value.
    stored = owner_execute("SELECT session_key FROM accounts_session")
    assert (session_key,) not in stored
    assert (hashlib.sha256(session_key.encode()).hexdigest(),) in stored
    # The provider's secret is not stored in clear.
    assert "s3cret" not in str(owner_execute("SELECT client_secret FROM accounts_identityprovider"))


def test_a_member_homed_elsewhere_is_seen_only_while_a_member(two_tenants):
    # The users' policy's membership test (a probe per user row, accounts.models): raw SQL
    # under A sees B's user while that user is a member of A, never B's other users.
    a, b = two_tenants["a"], two_tenants["b"]
    make_member(tenant=a, username="ann-red")
    guest = make_member(tenant=b, username="bob-red")
    make_member(tenant=b, username="bea-red")
    with tenant_context(a):
        Membership.objects.create(user=guest, role="viewer")
        assert {r[0] for r in fetch("SELECT username FROM accounts_user")} == {"ann-red", "bob-red"}
        Membership.objects.filter(user=guest).delete()
        assert {r[0] for r in fetch("SELECT username FROM accounts_user")} == {"ann-red"}
        assert fetch("UPDATE accounts_user SET first_name = 'x' WHERE username LIKE 'b%%'") == []
    with tenant_context(b):
        assert {r[0] for r in fetch("SELECT username FROM accounts_user")} == {"bob-red", "bea-red"}


def test_a_global_lookup_into_tenant_rows_fails_closed(two_tenants):
    make_member(tenant=two_tenants["a"], username="admin-red", role="admin")
    from tenants.exceptions import TenantNotSet

    with no_tenant(), pytest.raises(TenantNotSet):
        list(User.objects.filter(memberships__role="admin"))
    with tenant_context(two_tenants["a"]):
        assert [u.username for u in User.objects.filter(memberships__role="admin")] == ["admin-red"]
    assert Membership  # the model the lookup crosses
