"""Triggers that tell every process to forget admitted principals (accounts.admission_cache).

Statement-level, AFTER: the notification is delivered when the changing transaction commits,
and never if it rolls back. Only changes that can take access away fire it.
"""

from django.db import migrations

CHANNEL = "ameide_admission"

WATCHED = {
    "accounts_membership": "UPDATE OR DELETE",
    "accounts_user": "UPDATE OF is_active, issuer, subject OR DELETE",
    "tenants_tenant": "UPDATE OF status, external_id OR DELETE",
    "accounts_identityprovider": "UPDATE OR DELETE",
    "accounts_identityprovidertenant": "UPDATE OR DELETE",
}

FUNCTION = f"""
CREATE OR REPLACE FUNCTION accounts_admission_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME);
  RETURN NULL;
END $$
"""


def _create() -> list[str]:
    statements = [FUNCTION]
    for table, events in WATCHED.items():
        name = f"{table}_admission_changed"
        statements.append(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        statements.append(
            f"CREATE TRIGGER {name} AFTER {events} ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION accounts_admission_changed()"
        )
    return statements


def _drop() -> list[str]:
    statements = [f"DROP TRIGGER IF EXISTS {t}_admission_changed ON {t}" for t in WATCHED]
    return [*statements, "DROP FUNCTION IF EXISTS accounts_admission_changed()"]


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_user_awaiting_first_sign_in"),
        ("tenants", "0002_signed_scope_wall"),
    ]

    operations = [migrations.RunSQL(_create(), _drop())]
