"""`migrate` runs as the owner role (alias `owner`, added for this command only), then brings
every dedicated schema to the same state (tenants.placement.schemas)."""

from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate

from tenants.db.owner import OWNER_ALIAS, owner_alias
from tenants.exceptions import PlacementError
from tenants.placement.schemas import migrate_schemas


class Command(DjangoMigrate):
    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.set_defaults(database=OWNER_ALIAS)

    def execute(self, *args, **options):
        with owner_alias():  # system checks run before handle() and may query the alias too
            return super().execute(*args, **options)

    def handle(self, *args, **options):
        super().handle(*args, **options)
        # Dedicated schemas follow the shared tables to the code's state; a partial migrate
        # (an app or a target named), a plan or a fake run leaves them alone.
        if any(
            options.get(k)
            for k in ("app_label", "plan", "fake", "fake_initial", "prune", "check_unapplied")
        ):
            return
        report = self.stdout.write if options["verbosity"] >= 1 else None
        try:
            migrate_schemas(using=options["database"], report=report)
        except PlacementError as exc:
            raise CommandError(str(exc)) from exc
