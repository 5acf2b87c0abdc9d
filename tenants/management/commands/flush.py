"""`flush` empties tables as the owner: the runtime role has no TRUNCATE, by design."""

from django.core.management.commands.flush import Command as DjangoFlush
from django.db import connections


class Command(DjangoFlush):
    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.set_defaults(database="owner")

    def handle(self, **options):
        if options["database"] == "default" and "owner" in connections:
            options["database"] = "owner"  # the test runner flushes `default` by name
        return super().handle(**options)
