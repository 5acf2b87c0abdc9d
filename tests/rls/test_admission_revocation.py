"""Admitted principals are cached per process and revoked in every process at once (issue 11).

A real gunicorn with several worker processes serves bearer requests of tenant A; every worker
has cached A's principal. Then the membership is removed (or the tenant suspended, or the user
deactivated) in another process, and within a second every worker refuses the token.
"""

from __future__ import annotations

import time

import pytest
import requests

from accounts.models import Membership, User
from tenants.context import tenant_context
from tenants.models import Tenant
from tests.rls.support import COMMITTED, child_environment, gunicorn_server

pytestmark = COMMITTED

WORKERS = 3
BOUND_SECONDS = 1.0


def _remove_membership(tenant, username):
    with tenant_context(tenant):
        Membership.objects.filter(user__username=username).delete()


def _suspend(tenant, username):
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)


def _deactivate(tenant, username):
    User.objects.filter(username=username).update(is_active=False)


@pytest.mark.parametrize(
    "revoke", [_remove_membership, _suspend, _deactivate], ids=["removed", "suspended", "inactive"]
)
def test_a_revocation_reaches_every_worker_within_a_second(token_callers, revoke, two_tenants):
    port, tokens = token_callers
    caller = tokens["a token"]
    env = child_environment(
        CONN_MAX_AGE="60",
        DEBUG="true",
        DEV_ISSUER_ENABLED="true",
        DEV_ISSUER_URL=f"http://127.0.0.1:{port}/dev-issuer",
    )
    with gunicorn_server(threads=4, env=env, port=port, workers=WORKERS) as base:
        assert _get(base, caller)[0] == 200  # provisions the user, once
        warm = _until_every_worker(base, caller)
        assert {status for status, _ in warm} == {200}
        workers = {body["worker"] for _, body in warm}
        assert len(workers) == WORKERS, "every worker must have served (and cached) A"
        cached = {body["worker"] for _, body in warm if body["cached_principals"]}
        assert cached == workers, "each worker answered from its admission cache"
        username = User.objects.get(subject="token-user-a").username
        revoke(two_tenants["a"], username)
        time.sleep(BOUND_SECONDS)
        after = [_get(base, caller) for _ in range(60)]
    assert {status for status, _ in after} == {403}, [status for status, _ in after]


def _get(base: str, caller) -> tuple[int, dict | None]:
    """One request on a new connection (so that any worker may accept it)."""
    response = requests.get(
        f"{base}/probe/state/?n=1",
        headers={
            "Authorization": f"Bearer {caller.token}",
            "X-Expect-Tenant": caller.tenant,
            "Connection": "close",
        },
        timeout=10,
    )
    is_json = response.headers.get("Content-Type", "").startswith("application/json")
    return response.status_code, response.json() if is_json else None


def _until_every_worker(base: str, caller) -> list[tuple[int, dict | None]]:
    """Requests until each worker answered twice (the second answer comes from its cache)."""
    answers: list[tuple[int, dict | None]] = []
    seen: dict[int, int] = {}
    for _ in range(400):
        status, body = _get(base, caller)
        answers.append((status, body))
        if body and "worker" in body:
            seen[body["worker"]] = seen.get(body["worker"], 0) + 1
        if len(seen) == WORKERS and min(seen.values()) >= 2:
            break
    return answers
