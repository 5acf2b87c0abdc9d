# Where Citus is installed, the user table's policy asks a function whether the user has a
# membership the transaction may see (docs/citus.md); elsewhere the policy is unchanged.

from django.db import migrations

import tenants.constraints

# SECURITY INVOKER (the default): the memberships' own policy limits what it sees, as it limits
# the subquery it stands for. Its SET clause keeps it from being inlined into the user query,
# which Citus could not plan; FROM CURRENT keeps the schema the migration runs in.
FUNCTION = """
CREATE OR REPLACE FUNCTION accounts_user_has_membership(user_id bigint) RETURNS boolean
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
  SELECT EXISTS (SELECT 1 FROM accounts_membership m WHERE m.user_id = $1)
$$
"""


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0008_tenant_primary_key"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("tenants", "0002_signed_scope_wall"),
    ]

    operations = [
        migrations.RunSQL(FUNCTION, "DROP FUNCTION IF EXISTS accounts_user_has_membership(bigint)"),
        migrations.RemoveConstraint(model_name="user", name="accounts_user_rls"),
        migrations.AddConstraint(
            model_name="user",
            constraint=tenants.constraints.GlobalRowSecurity(
                name="accounts_user_rls",
                under_tenant="home_tenant_id = {tenant} OR EXISTS (SELECT 1 FROM "
                "accounts_membership m WHERE m.user_id = {table}.id)",
                under_tenant_on_citus="home_tenant_id = {tenant} OR "
                "accounts_user_has_membership({table}.id)",
            ),
        ),
    ]
