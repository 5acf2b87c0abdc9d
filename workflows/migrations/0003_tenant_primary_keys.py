# PRIMARY KEY (tenant_id, id) in place of Django's key on id and the UNIQUE (tenant_id, id):
# the key Citus needs to distribute the tables by tenant_id (docs/citus.md).

from django.db import migrations

import tenants.constraints


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0002_signed_scope_wall"),
        ("workflows", "0002_background_runs"),
    ]

    # The UNIQUE goes from the state only: TenantPrimaryKey replaces it in the database,
    # together with the composite foreign keys that referenced it (dropping it first would
    # fail on them).
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(
                    model_name="workflow", name="workflows_workflow_tenant_pk"
                ),
                migrations.RemoveConstraint(
                    model_name="workflowrun", name="workflows_workflowrun_tenant_pk"
                ),
            ]
        ),
        migrations.AddConstraint(
            model_name="workflow",
            constraint=tenants.constraints.TenantPrimaryKey(name="workflows_workflow_tenant_pk"),
        ),
        migrations.AddConstraint(
            model_name="workflowrun",
            constraint=tenants.constraints.TenantPrimaryKey(name="workflows_workflowrun_tenant_pk"),
        ),
    ]
