"""A tenant's placement is part of what an admitted principal carries: its change empties every
process's admission cache too, so every process routes the tenant's next request to its new
placement (tenants.placement.router, docs/placement.md)."""

from django.db import migrations

TRIGGER = "tenants_tenant_admission_changed"


def _trigger(columns: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {TRIGGER} ON tenants_tenant",
        f"CREATE TRIGGER {TRIGGER} AFTER UPDATE OF {columns} OR DELETE ON tenants_tenant "
        "FOR EACH STATEMENT EXECUTE FUNCTION accounts_admission_changed()",
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0010_admission_signal_on_citus"),
        ("tenants", "0003_tenant_placement"),
    ]

    operations = [
        migrations.RunSQL(
            _trigger("status, external_id, placement, placement_name"),
            _trigger("status, external_id"),
        )
    ]
