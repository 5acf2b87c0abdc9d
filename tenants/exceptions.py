"""The errors of the tenancy core; each names what went wrong and what to do instead."""


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
