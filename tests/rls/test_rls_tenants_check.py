"""`manage.py tenants check`: clean on a migrated database; names each weakening of the second
wall, and is clean again once it is repaired (THREATS 1, 7, 8).

The weakenings are made as the owner inside the test's transaction on the `owner` alias, which
the in-process command reads, and are rolled back with it: nothing reaches other databases or
sessions (role changes are not visible to anyone before commit).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connections

from tenants.db.catalog import audit_database
from tests import dedicated
from tests.rls.support import ROOT, child_environment, database_name

pytestmark = pytest.mark.django_db(databases=["default", "owner"])

RUNTIME = settings.TENANCY_RUNTIME_ROLE
TABLE = "workflows_workflow"
ISOLATION = f"{TABLE}_rls_isolation"
SIGNED = "(tenant_id = (SELECT ameide_private.scope_id('t')))"
POLICY = f"CREATE POLICY {ISOLATION} ON {TABLE} USING {SIGNED} WITH CHECK {SIGNED}"

# name -> (the weakening, the finding it must produce, the repair)
WEAKENINGS = {
    "policy dropped": (
        f"DROP POLICY {ISOLATION} ON {TABLE}",
        f"{TABLE}: no tenant isolation policy",
        POLICY,
    ),
    "policy without WITH CHECK": (
        f"DROP POLICY {ISOLATION} ON {TABLE}; CREATE POLICY {ISOLATION} ON {TABLE} USING {SIGNED}",
        f"{TABLE}: policy {ISOLATION} has no WITH CHECK",
        f"DROP POLICY {ISOLATION} ON {TABLE}; {POLICY}",
    ),
    "IS NULL escape": (
        f"ALTER POLICY {ISOLATION} ON {TABLE} USING (current_setting('app.scope', true) "
        f"IS NULL OR {SIGNED})",
        f"{TABLE}: policy {ISOLATION} has an IS NULL escape",
        f"DROP POLICY {ISOLATION} ON {TABLE}; {POLICY}",
    ),
    "extra permissive policy": (
        f"CREATE POLICY everyone ON {TABLE} USING (true) WITH CHECK (true)",
        f"{TABLE}: unexpected policy everyone (to public)",
        f"DROP POLICY everyone ON {TABLE}",
    ),
    "extra policy for one role": (
        f"CREATE POLICY for_runtime ON {TABLE} TO {RUNTIME} USING (true) WITH CHECK (true)",
        f"{TABLE}: unexpected policy for_runtime (to {RUNTIME})",
        f"DROP POLICY for_runtime ON {TABLE}",
    ),
    "FORCE removed": (
        f"ALTER TABLE {TABLE} NO FORCE ROW LEVEL SECURITY",
        f"{TABLE}: row level security is not FORCEd",
        f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY",
    ),
    "RLS disabled": (
        f"ALTER TABLE {TABLE} DISABLE ROW LEVEL SECURITY",
        f"{TABLE}: row level security is not ENABLEd",
        f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY",
    ),
    "TRUNCATE granted": (
        f"GRANT TRUNCATE ON {TABLE} TO {RUNTIME}",
        f"{TABLE}: runtime role {RUNTIME} may TRUNCATE",
        f"REVOKE TRUNCATE ON {TABLE} FROM {RUNTIME}",
    ),
    "BYPASSRLS given": (
        f"ALTER ROLE {RUNTIME} BYPASSRLS",
        f"runtime role {RUNTIME} has BYPASSRLS",
        f"ALTER ROLE {RUNTIME} NOBYPASSRLS",
    ),
    "owns a table": (
        f"ALTER TABLE {TABLE} OWNER TO {RUNTIME}",
        f"runtime role {RUNTIME} owns {TABLE}",
        f"ALTER TABLE {TABLE} OWNER TO CURRENT_USER",
    ),
    "member of a BYPASSRLS role": (
        f"CREATE ROLE {{db}}_bypass NOLOGIN BYPASSRLS; GRANT {{db}}_bypass TO {RUNTIME}",
        f"runtime role {RUNTIME} can SET ROLE {{db}}_bypass, which BYPASSRLS",
        f"REVOKE {{db}}_bypass FROM {RUNTIME}; DROP ROLE {{db}}_bypass",
    ),
    "default tenant for the role": (
        f"ALTER ROLE {RUNTIME} IN DATABASE {{db}} SET app.scope = '1'",
        f"{RUNTIME} in {{db}} has a default app.scope=1",
        f"ALTER ROLE {RUNTIME} IN DATABASE {{db}} RESET app.scope",
    ),
    "policy on the plain setting": (
        f"ALTER POLICY {ISOLATION} ON {TABLE} USING (tenant_id = "
        "(SELECT NULLIF(current_setting('app.scope', true), '')::bigint))",
        f"{TABLE}: policy {ISOLATION} does not test the signed tenant",
        f"DROP POLICY {ISOLATION} ON {TABLE}; {POLICY}",
    ),
    "global table without FORCE": (
        "ALTER TABLE accounts_user NO FORCE ROW LEVEL SECURITY",
        "accounts_user: row level security is not ENABLEd and FORCEd",
        "ALTER TABLE accounts_user FORCE ROW LEVEL SECURITY",
    ),
    "extra policy on a global table": (
        "CREATE POLICY everyone ON accounts_session USING (true) WITH CHECK (true)",
        "accounts_session: unexpected policy everyone",
        "DROP POLICY everyone ON accounts_session",
    ),
    "signing key readable": (
        f"GRANT SELECT ON ameide_private.scope_key TO {RUNTIME}",
        f"runtime role {RUNTIME} can read the signing key",
        f"REVOKE SELECT ON ameide_private.scope_key FROM {RUNTIME}",
    ),
    "signer callable": (
        f"GRANT EXECUTE ON FUNCTION ameide_private.mac_of(text) TO {RUNTIME}",
        f"runtime role {RUNTIME} can call ameide_private.mac_of (a signer)",
        f"REVOKE EXECUTE ON FUNCTION ameide_private.mac_of(text) FROM {RUNTIME}",
    ),
    "audit rows writable": (
        f"GRANT INSERT ON tenants_auditevent TO {RUNTIME}",
        f"runtime role {RUNTIME} may INSERT audit rows directly",
        f"REVOKE INSERT ON tenants_auditevent FROM {RUNTIME}",
    ),
    "another signing key": (
        "UPDATE ameide_private.scope_key SET inner_pad = sha256(inner_pad) || sha256(inner_pad)",
        "the database's signing key differs from this process's (run `migrate` with the same "
        "SECRET_KEY / AMEIDE_SCOPE_KEY as the app)",
        "ROLLBACK_MARKER",
    ),
    "view over a tenant table": (
        f"CREATE VIEW every_workflow AS SELECT * FROM {TABLE}",
        "view every_workflow reads tenant tables as its owner (no security_invoker)",
        "ALTER VIEW every_workflow SET (security_invoker = true)",
    ),
    "SECURITY DEFINER function": (
        "CREATE FUNCTION count_all() RETURNS bigint LANGUAGE sql SECURITY DEFINER "
        f"AS 'SELECT count(*) FROM {TABLE}'",
        "SECURITY DEFINER function count_all has no pinned search_path",
        "DROP FUNCTION count_all()",
    ),
    "primary key on id alone": (
        "ALTER TABLE accounts_membership DROP CONSTRAINT accounts_membership_tenant_pk; "
        "ALTER TABLE accounts_membership ADD PRIMARY KEY (id)",
        "accounts_membership: primary key is not (tenant_id, id)",
        "ALTER TABLE accounts_membership DROP CONSTRAINT accounts_membership_pkey; "
        "ALTER TABLE accounts_membership ADD CONSTRAINT accounts_membership_tenant_pk "
        "PRIMARY KEY (tenant_id, id)",
    ),
    "composite key dropped": (
        "ALTER TABLE workflows_workflowrun DROP CONSTRAINT workflows_workflowrun_workflow_id_tfk",
        "workflows_workflowrun: no composite foreign key (tenant_id, workflow_id)",
        "ALTER TABLE workflows_workflowrun ADD CONSTRAINT workflows_workflowrun_workflow_id_tfk "
        "FOREIGN KEY (tenant_id, workflow_id) REFERENCES workflows_workflow (tenant_id, id) "
        "DEFERRABLE INITIALLY DEFERRED",
    ),
}


def run_check() -> tuple[int, str]:
    """The catalog audit of `tenants check`, in this process on the owner alias (this test's
    transaction), in the command's output form. What the process can reach is the child
    process's business (this test process holds the owner alias on purpose)."""
    findings = audit_database(using="owner")
    if findings:
        return 1, "".join(f"FAIL {finding}\n" for finding in findings)
    return 0, "tenancy check: database is clean\n"


def as_owner(sql: str) -> None:
    with connections["owner"].cursor() as cursor:
        for statement in sql.format(db=database_name()).split("; "):
            cursor.execute(statement)


def test_the_command_passes_on_the_migrated_test_database():
    """The real command line, in a child process, against the committed test database."""
    result = subprocess.run(
        [sys.executable, "manage.py", "tenants", "check"],
        cwd=ROOT,
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "database is clean" in result.stdout


@pytest.mark.parametrize("name", list(WEAKENINGS))
def test_each_weakening_is_named_and_the_repair_passes(name):
    weaken, finding, repair = WEAKENINGS[name]
    assert run_check() == (0, "tenancy check: database is clean\n")
    as_owner(weaken)
    code, output = run_check()
    assert code == 1
    assert f"FAIL {finding.format(db=database_name())}\n" in output
    if repair == "ROLLBACK_MARKER":
        return  # repaired by the test transaction's rollback
    as_owner(repair)
    assert run_check() == (0, "tenancy check: database is clean\n")


def test_a_restrictive_policy_only_narrows_and_is_no_finding():
    as_owner(f"CREATE POLICY only_drafts ON {TABLE} AS RESTRICTIVE USING (status = 'draft')")
    assert run_check() == (0, "tenancy check: database is clean\n")


def test_a_runtime_process_given_the_owners_credentials_fails_the_check():
    """THREATS 34: a process whose runtime alias logs in as the owner (a superuser here, or the
    tables' owner) is reported, as is the owner's address in its environment."""
    from tests.rls.support import connection_kwargs, database_url

    owner_url = database_url(connection_kwargs(as_owner=True))
    env = child_environment(DATABASE_URL=owner_url, DATABASE_OWNER_URL=owner_url)
    result = subprocess.run(
        [sys.executable, "manage.py", "tenants", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL this process's alias 'default' logs in as" in result.stderr
    assert "WARN DATABASE_OWNER_URL is set in this process's environment" in result.stderr


def test_runtime_processes_have_no_owner_alias():
    """The settings every process loads configure the runtime role only: `default` and each
    dedicated database's alias (tests/dedicated.py), no owner's."""
    code = (
        "import django; django.setup(); from django.db import connections; "
        "print(sorted((a, c['USER']) for a, c in connections.settings.items()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**child_environment(), "DJANGO_SETTINGS_MODULE": "ameide.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    expected = sorted((a, RUNTIME) for a in ["default", *dedicated.ALIASES])
    assert result.stdout.strip() == str(expected), result.stderr
