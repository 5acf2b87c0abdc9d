"""`flush` empties tables as the owner (the runtime role has no TRUNCATE, by design), and
those of dedicated schemas with them."""

from django.core.management.commands.flush import Command as DjangoFlush

from tenants.db.owner import OWNER_ALIAS, owner_alias
from tenants.placement import databases
from tenants.placement.router import placement_of_alias


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
        placement = placement_of_alias(options.get("database") or "")
        if placement and options["database"] != databases.owner_alias_name(placement):
            # A dedicated database's runtime alias (the test runner again): its owner's.
            with databases.owner_alias(placement) as alias:
                options["database"] = alias
                return super().execute(*args, **options)
        with owner_alias():
            return super().execute(*args, **options)
