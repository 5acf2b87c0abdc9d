"""Run another management command inside one tenant's context (`tenants exec SLUG -- ...`)."""

from __future__ import annotations

from django.apps import apps
from django.core.management import call_command, get_commands, load_command_class
from django.core.management.commands.dumpdata import Command as DumpData
from django.db import transaction

from tenants.actor import acting, current_actor
from tenants.audit import record_event
from tenants.context import tenant_context
from tenants.exceptions import CommandInTenantFailed, LifecycleError, TenancyError
from tenants.models import Tenant, TenantModel

# Commands that act on the whole database (every tenant) or start long-lived servers; inside
# one tenant's context they would either be wrong or pointless.
DATABASE_WIDE_COMMANDS = frozenset(
    {"tenants", "flush", "migrate", "sqlflush", "runserver", "testserver"}
)


def _tenant_model_labels() -> list[str]:
    return [
        m._meta.label
        for m in apps.get_models()
        if issubclass(m, TenantModel) and m._meta.managed and not m._meta.proxy
    ]


def _dumpdata_arguments(args: list[str]) -> list[str]:
    """dumpdata in a tenant dumps that tenant's rows and nothing global: labels must name
    tenant models (or apps, narrowed to their tenant models); none means every tenant model."""
    parser = DumpData().create_parser("manage.py", "dumpdata")
    try:
        options, _ = parser.parse_known_args(args)
    except SystemExit:
        raise LifecycleError("dumpdata: invalid arguments.") from None
    if options.database not in (None, "default"):
        raise LifecycleError("dumpdata in a tenant reads the tenant's own database only.")
    tenant_labels = _tenant_model_labels()
    wanted: list[str] = []
    for label in options.args:
        if "." in label:
            if label.lower() not in {t.lower() for t in tenant_labels}:
                raise LifecycleError(
                    f"dumpdata in a tenant dumps tenant models only; {label!r} is global."
                )
            wanted.append(label)
        else:
            wanted.extend(t for t in tenant_labels if t.split(".")[0] == label)
            if not wanted:
                raise LifecycleError(f"App {label!r} has no tenant models.")
    rest = [a for a in args if a not in options.args]
    return [*rest, *(wanted or tenant_labels)]


def _runnable(name: str, args: list[str]) -> list[str]:
    """The arguments to run `name` with inside a tenant, or a refusal."""
    if name in DATABASE_WIDE_COMMANDS:
        raise LifecycleError(f"`{name}` acts on the whole database; run it without `exec`.")
    commands = get_commands()
    if name not in commands:
        raise LifecycleError(f"Unknown command {name!r}.")
    if name == "dumpdata":
        return _dumpdata_arguments(args)
    command = load_command_class(commands[name], name)
    if not getattr(command, "tenant_safe", False):
        raise LifecycleError(
            f"`{name}` is not declared safe inside one tenant (a command opts in with "
            "`tenant_safe = True`); only dumpdata and such commands run under `exec`."
        )
    return args


def run_in_tenant(*, tenant: Tenant, argv: list[str], stdout, stderr) -> None:
    """Run `argv` (a command name and its arguments) with `tenant` as the current tenant.

    Runs only commands that are safe inside one tenant: dumpdata (narrowed to tenant models)
    and commands that declare `tenant_safe = True`. Refuses a suspended or deleted tenant, an
    unknown command and database-wide commands. The
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
    args = _runnable(name, args)
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
