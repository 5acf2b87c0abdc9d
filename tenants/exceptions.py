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


class CommandInTenantFailed(LifecycleError):
    """The command ran in the tenant and failed with a tenancy error."""


class PlacementError(TenantInputError):
    """A dedicated placement could not be named, provisioned or migrated; the message says
    which and what to run."""


class PlacementNotCovered(TenancyError):
    """A cross-tenant ORM read or write inside unscoped() would miss (or misplace) the rows
    of tenants in dedicated schemas: refused rather than answering for the shared tables only."""


class MoveFailed(LifecycleError):
    """A tenant move stopped at a step it could not complete (the message says which and what
    to run); the move record keeps the step, so running it again continues."""
