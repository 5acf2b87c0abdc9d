"""`migrate` runs as the owner role (alias `owner`, added for this command only); on a Citus
coordinator it places the tables afterwards (tenants.citus.distribute, idempotent), so the
migrate that creates a new tenant model's table also distributes it (docs/citus.md); then it
brings every dedicated schema (tenants.placement.schemas) and every dedicated database
(AMEIDE_DATABASES) to the same state (docs/placement.md)."""

from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections

from tenants.citus.distribute import citus_installed, tenants_distribute
from tenants.db.owner import OWNER_ALIAS, owner_alias
from tenants.exceptions import LifecycleError, PlacementError
from tenants.placement import databases
from tenants.placement.router import placement_of_alias
from tenants.placement.schemas import migrate_schemas


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
        # Dedicated schemas and databases follow the shared tables to the code's state; a
        # partial migrate (an app or a target named), a plan or a fake run leaves them alone.
        partial = ("app_label", "plan", "fake", "fake_initial", "prune", "check_unapplied")
        if any(options.get(k) for k in partial):
            return
        # Dedicated schemas live next to the shared tables: not on Citus (docs/placement.md),
        # and not in a dedicated database, which has no tenant directory.
        if not on_citus and not placement_of_alias(using):
            report = self.stdout.write if options["verbosity"] >= 1 else None
            try:
                migrate_schemas(using=using, report=report)
            except PlacementError as exc:
                raise CommandError(str(exc)) from exc
        # Only the full run of the owner's alias (not `--database X`, not the test runner's
        # migration of one alias): the dedicated databases' placed tables follow `default`.
        if using == OWNER_ALIAS:
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
