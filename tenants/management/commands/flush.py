"""`flush` empties tables as the owner (the runtime role has no TRUNCATE, by design), and
those of dedicated schemas with them."""

from django.core.management.commands.flush import Command as DjangoFlush

from tenants.db.owner import OWNER_ALIAS, owner_alias


class Command(DjangoFlush):
    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.set_defaults(database=OWNER_ALIAS)

    def execute(self, *args, **options):
        if options.get("database") == "default":
            options["database"] = OWNER_ALIAS  # the test runner flushes `default` by name
        # Tables of dedicated schemas point at the tenants (tenants.placement): TRUNCATE of
        # the tenant table must take theirs with it, or PostgreSQL refuses it.
        options["allow_cascade"] = True
        with owner_alias():
            return super().execute(*args, **options)
