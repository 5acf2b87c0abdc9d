"""The search path each transaction carries (dedicated schemas): names and SQL only, no imports,
so the database backend and the constraints can use them.

The backend (tenants.db.backend) adds one of the `search_path` settings below to the prefix
that carries the signed scope, so the path is set per transaction (`set_config(..., true)`),
never per session: a pooled connection carries no schema into its next transaction.
"""

from __future__ import annotations

import re

# The schema of the shared tables and of every global table (tenants, users, the audit log).
HOME_SCHEMA = "public"
# The DATABASES entry of a connection pinned to one dedicated schema: only the connections
# that migrate a schema (tenants.placement.schemas) have it.
PINNED = "TENANCY_SCHEMA"
# Alias prefix of those connections.
ALIAS_PREFIX = "placement-schema:"

# Appended to the scope prefix. A tenant's path is read in the database from its row, in the
# same statement that sets its signed scope (evaluated after it, left to right), so a new
# placement holds from every process's next transaction.
TENANT_SEARCH_PATH = "set_config('search_path', ameide_private.scope_search_path(), true)"
# The global scope, break-glass, pinned connections and a tenant whose row, as the process
# loaded it, says the shared tables (tenants.db.backend): a path the application names.
FIXED_SEARCH_PATH = "set_config('search_path', %s, true)"

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_RESERVED = re.compile(r"^(pg_|information_schema$|public$|ameide_private$)")


def valid_schema_name(name: str) -> bool:
    """Lowercase identifiers only (no quoting surprises), none of PostgreSQL's or ours."""
    return bool(_SCHEMA_NAME.match(name or "")) and not _RESERVED.match(name)


def search_path_of(schema: str) -> str:
    """The search path of a dedicated schema: its tables first, then the global tables."""
    if not valid_schema_name(schema):
        raise ValueError(f"not a dedicated schema's name: {schema!r}")
    return f'"{schema}", {HOME_SCHEMA}'


def pinned_schema(settings_dict: dict) -> str | None:
    """The dedicated schema a connection is pinned to, or None (every ordinary connection)."""
    return settings_dict.get(PINNED) or None
