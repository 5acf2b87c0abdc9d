"""Run another management command inside one tenant's context (`tenants exec SLUG -- ...`)."""

from __future__ import annotations

from django.core.management import call_command, get_commands
from django.db import transaction

from tenants.audit import acting, current_actor, record_event
from tenants.context import tenant_context
from tenants.exceptions import TenancyError
from tenants.lifecycle.errors import LifecycleError
from tenants.models import Tenant

# Commands that act on the whole database (every tenant) or start long-lived servers; inside
# one tenant's context they would either be wrong or pointless.
DATABASE_WIDE_COMMANDS = frozenset(
    {"tenants", "flush", "migrate", "sqlflush", "runserver", "testserver"}
)


class CommandInTenantFailed(LifecycleError):
    """The command ran in the tenant and failed with a tenancy error."""


def run_in_tenant(*, tenant: Tenant, argv: list[str], stdout, stderr) -> None:
    """Run `argv` (a command name and its arguments) with `tenant` as the current tenant.

    Refuses a suspended or deleted tenant, an unknown command and database-wide commands. The
    audit row is committed before the command starts, so even a command that fails or rolls
    back its own work leaves the trace that it was run in this tenant."""
    if not argv:
        raise LifecycleError("Name the command to run: tenants exec SLUG -- COMMAND [ARGS...]")
    name, *args = argv
    if not tenant.is_active:
        raise LifecycleError(
            f"Tenant {tenant.slug!r} is {tenant.status}; commands run only in an active tenant "
            f"(`tenants activate {tenant.slug}` first)."
        )
    if name in DATABASE_WIDE_COMMANDS:
        raise LifecycleError(f"`{name}` acts on the whole database; run it without `exec`.")
    if name not in get_commands():
        raise LifecycleError(f"Unknown command {name!r}.")
    with transaction.atomic():
        record_event(action="tenant.exec", tenant=tenant, details={"argv": argv})
    actor = current_actor()
    with (
        acting(name=actor.name, acting_as=f"tenant:{tenant.slug}", request_id=actor.request_id),
        tenant_context(tenant),
    ):
        try:
            call_command(name, *args, stdout=stdout, stderr=stderr)
        except TenancyError as exc:
            raise CommandInTenantFailed(f"{name}: {exc}") from exc
