"""`migrate` runs as the owner role (alias `owner`, added for this command only)."""

from django.core.management.commands.migrate import Command as DjangoMigrate

from tenants.db.owner import OWNER_ALIAS, owner_alias


class Command(DjangoMigrate):
    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.set_defaults(database=OWNER_ALIAS)

    def execute(self, *args, **options):
        with owner_alias():  # system checks run before handle() and may query the alias too
            return super().execute(*args, **options)
