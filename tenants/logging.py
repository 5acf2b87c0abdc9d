"""Tags every log record with the tenant, user and request (or command) id, or '-'."""

import logging

from tenants.actor import current_actor
from tenants.context import current_tenant_or_none


class TenantLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        tenant = current_tenant_or_none()
        if tenant is None:
            # Django logs a response's status ("Not Found: ...") after the middleware has left
            # the tenant's context; the request it passes along still names the tenant.
            tenant = getattr(getattr(record, "request", None), "tenant", None)
        record.tenant = getattr(tenant, "slug", None) or "-"
        actor = current_actor()
        request = getattr(record, "request", None)
        # Lines Django logs after the middleware has returned: the request remembers them.
        record.user = actor.name or getattr(request, "log_user", "") or "-"
        record.request_id = actor.request_id or getattr(request, "request_id", "") or "-"
        return True
