"""The admission signal's trigger function, silent on a Citus worker.

On Citus the memberships and tenants are reference tables: a change runs on every node's copy,
and on the workers inside a prepared (two-phase) transaction, which may not NOTIFY ("cannot
PREPARE a transaction that has executed LISTEN, UNLISTEN, or NOTIFY"). The coordinator's own
copy fires the trigger too, so the signal is still sent, once, where the processes listen
(docs/citus.md). Without Citus nothing changes.
"""

from django.db import migrations

CHANNEL = "ameide_admission"

FUNCTION = f"""
CREATE OR REPLACE FUNCTION accounts_admission_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF to_regproc('pg_catalog.citus_is_coordinator') IS NOT NULL THEN
    IF NOT citus_is_coordinator() THEN RETURN NULL; END IF;
  END IF;
  PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME);
  RETURN NULL;
END $$
"""

PREVIOUS = f"""
CREATE OR REPLACE FUNCTION accounts_admission_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME);
  RETURN NULL;
END $$
"""


class Migration(migrations.Migration):
    dependencies = [("accounts", "0009_user_policy_on_citus")]

    operations = [migrations.RunSQL(FUNCTION, PREVIOUS)]
