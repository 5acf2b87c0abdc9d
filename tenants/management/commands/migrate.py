"""`migrate` runs as the owner role (alias `owner`, added for this command only); on a Citus
coordinator it places the tables afterwards (tenants.citus.distribute, idempotent), so the
migrate that creates a new tenant model's table also distributes it (docs/citus.md); then it
brings every dedicated database (AMEIDE_DATABASES) to the same state as its owner."""

from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections

from tenants.citus.distribute import citus_installed, tenants_distribute
from tenants.db.owner import OWNER_ALIAS, owner_alias
from tenants.exceptions import LifecycleError
from tenants.placement import databases


class Command(DjangoMigrate):
    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.set_defaults(database=OWNER_ALIAS)

    def execute(self, *args, **options):
        with owner_alias():  # system checks run before handle() and may query the alias too
            return super().execute(*args, **options)

    def handle(self, *args, **options) -> None:
        using = options["database"]
        on_citus = citus_installed(using=using)
        if on_citus:
            with connections[using].cursor() as cursor:
                # A new tenant table's key to the tenants (a reference table) would make Citus
                # turn the table into a "Citus local table" at once, which it then cannot
                # distribute because of its identity column ("cannot complete operation on a
                # table with identity column"). Off, the table stays a plain one until it is
                # distributed below, keys and all.
                cursor.execute("SET citus.enable_local_reference_table_foreign_keys = off")
        try:
            super().handle(*args, **options)
        finally:
            if on_citus:
                with connections[using].cursor() as cursor:
                    cursor.execute("RESET citus.enable_local_reference_table_foreign_keys")
        if on_citus and not (options["plan"] or options["check_unapplied"]):
            self._place_on_citus(using=using, verbosity=options["verbosity"])
        # Only the full run (not `--database X`, not one app's target, not the test runner's
        # migration of one alias, not --plan, --check or --prune, which apply nothing): the
        # dedicated databases' placed tables follow `default`.
        partial = ("app_label", "plan", "prune", "check_unapplied")
        if options["database"] == OWNER_ALIAS and not any(options.get(k) for k in partial):
            databases.migrate_all(stdout=self.stdout, verbosity=options["verbosity"])

    def _place_on_citus(self, *, using: str, verbosity: int) -> None:
        try:
            summary = tenants_distribute(using=using)
        except LifecycleError as exc:
            # Migrated, but a table left on the coordinator would be a quiet difference from
            # what `tenants check` expects: say so, and fail.
            raise CommandError(
                f"Migrated, but the tables are not placed on Citus: {exc} "
                "Run `manage.py tenants distribute` once it is a coordinator with workers."
            ) from exc
        if verbosity >= 1:
            for table in summary.placed:
                self.stdout.write(f"  Placed on Citus: {table}")
            for key in summary.dropped_keys:
                self.stdout.write(f"  Dropped foreign key {key.table}.{key.name}: {key.reason}")
