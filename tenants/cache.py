"""Cache keys that carry the tenant, so one tenant can never read another's cached value.

Installed as every cache's KEY_FUNCTION (settings.CACHES): code calls `cache.get("report")`
as usual and the key becomes `t<tenant id>:report` under a tenant, `global:report` outside
one, and `unscoped:report` inside unscoped().
"""

from __future__ import annotations

from tenants.context import current_scope


def tenant_key(key: str, key_prefix: str, version: int) -> str:
    scope = current_scope()
    if scope.tenant is not None:
        owner = f"t{scope.tenant.pk}"
    elif scope.is_bypass:
        owner = "unscoped"
    else:
        owner = "global"
    return f"{key_prefix}:{version}:{owner}:{key}"
