"""Tags every log record with the current tenant (or '-')."""

import logging

from tenants.context import current_tenant_or_none


class TenantLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        tenant = current_tenant_or_none()
        record.tenant = tenant.slug if tenant is not None else "-"
        return True
