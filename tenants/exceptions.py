"""The errors of the tenancy app, in one place; each names what went wrong and what to do instead."""


class TenancyError(Exception):
    """Base class of every tenancy error."""


class TenantNotSet(TenancyError):
    """Tenant-owned rows were touched with no tenant in context: scoping fails closed."""

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message
            or "No tenant is set. Wrap the work in `with tenant_context(tenant):`, or, for "
            "audited cross-tenant work, `with unscoped(reason=...):`."
        )


class CrossTenantWrite(TenancyError):
    """A write would create a row of another tenant or move a row between tenants."""


class BypassReasonRequired(TenancyError):
    """`unscoped()` was called without a reason."""


class TenantInactive(TenancyError):
    """The tenant is suspended or deleted and cannot be entered for ordinary work."""


class EntryRefused(TenancyError):
    """A caller may not enter a tenant: 403 (authenticated, not admitted) or 401 (no trust).

    The tenant middleware answers it; the identity app raises its subclasses.
    """

    def __init__(self, *, status: int, code: str, detail: str, tenant=None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.tenant = tenant  # the tenant that was refused, when known (for the audit row)


class PlacementUnavailable(TenancyError):
    """The tenant's rows are in a dedicated database this process has no address for.

    Never a fallback to the shared tables: name the database in AMEIDE_DATABASES.
    """

    def __init__(self, *, tenant) -> None:
        super().__init__(
            f"tenant {tenant.slug!r} is placed in dedicated database "
            f"{tenant.placement_name!r}, which AMEIDE_DATABASES does not name in this process"
        )
        self.tenant = tenant


class UnscopedAcrossPlacements(TenancyError):
    """unscoped() would read or write tenant rows while a tenant is in a dedicated schema or
    database.

    Its break-glass grant opens the shared tables only; rather than answer for some tenants
    as if it were all of them, it refuses (docs/placement.md).
    """

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            detail
            or "unscoped() covers the shared tables only and some tenant has a dedicated "
            "schema or database: cross-tenant work on tenant rows is refused; work per tenant "
            "with tenant_context() instead"
        )


class CrossDatabaseKeyInvalid(TenancyError):
    """A row in a dedicated database would point at a global row that does not exist."""


class ActingRefused(TenancyError):
    """The act-as request was refused (not a platform admin, no reason, a deleted tenant)."""


class TenantInputError(ValueError):
    """Bad input for a tenant operation; nothing was written."""


class TenantNotFound(LookupError):
    """No tenant answers to the slug given."""


class LifecycleError(TenantInputError):
    """A lifecycle operation refused its input or its state; nothing was written."""


class ArchiveInvalid(LifecycleError):
    """An archive failed verification (manifest, checksum, count, schema); nothing was written."""


class ImportMismatch(ArchiveInvalid):
    """The rows read back after an import differ from the archive; the import was rolled back."""


class IdsTaken(LifecycleError):
    """`import --keep-ids`: archived ids are taken in this database; nothing was written."""


class CommandInTenantFailed(LifecycleError):
    """The command ran in the tenant and failed with a tenancy error."""


class NodeMoveFailed(LifecycleError):
    """A Citus step of `tenants move --to node` failed; the steps before it stay done and
    running the command again finishes the move."""


class PlacementError(TenantInputError):
    """A dedicated placement could not be named, provisioned or migrated; the message says
    which and what to run."""


class MoveFailed(LifecycleError):
    """A tenant move stopped at a step it could not complete (the message says which and what
    to run); the move record keeps the step, so running it again continues."""
