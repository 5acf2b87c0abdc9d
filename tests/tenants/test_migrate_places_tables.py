"""`migrate` places a new tenant model's table on a Citus coordinator (distributed by tenant_id,
colocated, its policies on every shard) without a separate `tenants distribute`, and leaves a
plain PostgreSQL alone. The model comes from an app that only tests/citus_new_model/settings.py
installs; the test migrates it into the test database in a child process and removes it
afterwards as the owner (`migrate citus_new_model zero` fails on any app: the policies that
every migrate refreshes, tenants.db.roles.apply_row_security, include the dropped table's)."""

from __future__ import annotations

import subprocess
import sys

from django.conf import settings

from tenants.citus.verify import SHARD_TEST
from tests.rls.support import ROOT, child_environment, owner_execute

TABLE = "citus_new_model_gadget"


def migrate(*args: str) -> subprocess.CompletedProcess:
    env = child_environment(DJANGO_SETTINGS_MODULE="tests.citus_new_model.settings")
    return subprocess.run(
        [sys.executable, "manage.py", "migrate", "citus_new_model", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def placement(table: str) -> tuple | None:
    rows = owner_execute(
        "SELECT partmethod, column_to_column_name(logicalrelid, partkey), colocationid "
        "FROM pg_dist_partition WHERE logicalrelid = %s::regclass",
        [table],
    )
    return rows[0] if rows else None


def remove_the_app() -> None:
    """What `migrate citus_new_model zero` would do: the kept Citus test database stays clean."""
    owner_execute(f"DROP TABLE IF EXISTS {TABLE}")
    owner_execute("DELETE FROM django_migrations WHERE app = 'citus_new_model'")
    owner_execute(
        "DELETE FROM auth_permission WHERE content_type_id IN "
        "(SELECT id FROM django_content_type WHERE app_label = 'citus_new_model')"
    )
    owner_execute("DELETE FROM django_content_type WHERE app_label = 'citus_new_model'")


def test_migrate_places_a_new_tenant_table(django_db_setup):
    assert not owner_execute("SELECT 1 FROM pg_class WHERE relname = %s", [TABLE])
    created = migrate()
    try:
        assert created.returncode == 0, created.stdout + created.stderr
        assert owner_execute("SELECT relforcerowsecurity FROM pg_class WHERE relname = %s", [TABLE])
        if settings.TENANCY_CITUS:
            assert f"Placed on Citus: {TABLE}" in created.stdout
            method, column, group = placement(TABLE)
            assert (method, column) == ("h", "tenant_id")
            assert group == placement("workflows_workflow")[2]  # colocated
            shards = owner_execute(
                "SELECT success, result FROM run_command_on_shards(%s, %s)", [TABLE, SHARD_TEST]
            )
            assert shards and all(row == (True, "t") for row in shards), shards
            # The composite key to the workflows and the key to the tenants survived.
            keys = owner_execute(
                "SELECT confrelid::regclass::text FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY 1",
                [TABLE],
            )
            assert keys == [("tenants_tenant",), ("workflows_workflow",)]
            again = migrate()
            assert again.returncode == 0 and "Placed on Citus" not in again.stdout
        else:
            assert "Placed on Citus" not in created.stdout
    finally:
        remove_the_app()
    assert not owner_execute("SELECT 1 FROM pg_class WHERE relname = %s", [TABLE])
