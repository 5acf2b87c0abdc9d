# PRIMARY KEY (tenant_id, id) in place of Django's key on id and the UNIQUE (tenant_id, id):
# the key Citus needs to distribute the table by tenant_id (docs/citus.md).

from django.db import migrations

import tenants.constraints


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0007_membership_viewer_role"),
        ("tenants", "0002_signed_scope_wall"),
    ]

    # The UNIQUE goes from the state only: TenantPrimaryKey replaces it in the database.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(
                    model_name="membership", name="accounts_membership_tenant_pk"
                ),
            ]
        ),
        migrations.AddConstraint(
            model_name="membership",
            constraint=tenants.constraints.TenantPrimaryKey(name="accounts_membership_tenant_pk"),
        ),
    ]
