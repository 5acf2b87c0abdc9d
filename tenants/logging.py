"""Tags every log record with the tenant of its request (or '-')."""

import logging

from tenants.context import current_tenant_or_none


class TenantLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        tenant = current_tenant_or_none()
        if tenant is None:
            # Django logs a response's status ("Not Found: ...") after the middleware has left
            # the tenant's context; the request it passes along still names the tenant.
            tenant = getattr(getattr(record, "request", None), "tenant", None)
        record.tenant = getattr(tenant, "slug", None) or "-"
        return True
