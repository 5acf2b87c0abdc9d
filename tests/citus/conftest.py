"""Tests that need a Citus cluster: collected by `make test-citus` only (docs/citus.md).

On one PostgreSQL server there is nothing for them to move, and a skipped test fails under
CI=true, so `make test` does not collect them at all; their refusals off Citus are tested in
tests/tenants/test_citus_move_refused.py.
"""

from django.conf import settings

collect_ignore_glob = [] if settings.TENANCY_CITUS else ["test_*.py"]
