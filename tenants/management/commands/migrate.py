"""`migrate` runs as the owner role (alias `owner`, added for this command only), then brings
every dedicated database (AMEIDE_DATABASES) to the same state as its owner."""

from django.core.management.commands.migrate import Command as DjangoMigrate

from tenants.db.owner import OWNER_ALIAS, owner_alias
from tenants.placement import databases


class Command(DjangoMigrate):
    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.set_defaults(database=OWNER_ALIAS)

    def execute(self, *args, **options):
        with owner_alias():  # system checks run before handle() and may query the alias too
            return super().execute(*args, **options)

    def handle(self, *args, **options):
        super().handle(*args, **options)
        # Only the full run (not `--database X`, not one app's target, not the test runner's
        # migration of one alias, not --plan, --check or --prune, which apply nothing): the
        # dedicated databases' placed tables follow `default`.
        partial = ("app_label", "plan", "prune", "check_unapplied")
        if options["database"] == OWNER_ALIAS and not any(options.get(k) for k in partial):
            databases.migrate_all(stdout=self.stdout, verbosity=options["verbosity"])
