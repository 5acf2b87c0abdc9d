"""`kill -9` of `tenants move` after each step, then a rerun: the move completes with the same
rows and checksums; or `--rollback` before the switch leaves the tenant where it was. The
command runs as a child process that kills itself (SIGKILL) right after recording the step
(AMEIDE_MOVE_KILL_AFTER), so nothing of it runs after that point, as with `kill -9`. Both to a
dedicated schema and to the dedicated database on the other server (`far`), and back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from django.db import OperationalError

from tenants.context import tenant_context
from tenants.models import PlacementMove, Tenant
from tenants.placement.capture import is_frozen_error
from tenants.placement.moving import FINAL, FREEZE, STEPS, SWITCH, VERIFY
from tests import dedicated
from tests.placement.move_support import (
    app_rows,
    clean_up,
    placed_rows,
    private_rows,
    seed,
    triggers,
)
from tests.rls.support import ROOT, child_environment
from workflows.models import Workflow

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=dedicated.COMMITTED_DATABASES),
    pytest.mark.slow,
]
WAIT_LIMIT_SECONDS = 120  # how long a child may take before the test fails (not a threshold)
FROZEN_STEPS = (FREEZE, FINAL, VERIFY)
# Where the tenant goes (and comes back from): (--to arguments, where its rows then are).
ROUTES = {
    "schema": (("schema", "pmove_one"), "pmove_one"),
    **(
        {"database": (("database", dedicated.FAR), f"database:{dedicated.FAR}")}
        if dedicated.ENABLED
        else {}
    ),
}


def move(*args: str, kill_after: str = "") -> subprocess.CompletedProcess:
    env = child_environment(AMEIDE_MOVE_KILL_AFTER=kill_after)
    return subprocess.run(
        [sys.executable, "manage.py", "tenants", "move", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT_LIMIT_SECONDS,
    )


@pytest.fixture
def acme():
    tenant = Tenant.objects.create(slug="acme", external_id="acme", name="Acme")
    other = Tenant.objects.create(slug="other", external_id="other", name="Other")
    seed(tenant, workflows=8, runs=2)
    seed(other, workflows=3, runs=1)
    yield tenant
    clean_up()


def _write(tenant: Tenant, name: str) -> None:
    with tenant_context(Tenant.objects.get(pk=tenant.pk)):
        Workflow.objects.create(name=name)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("step", STEPS[:-1])
def test_killed_after_each_step_a_rerun_completes(acme, step, route):
    to, there = ROUTES[route]
    before = app_rows(acme)
    killed = move("acme", "--to", *to, kill_after=step)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    record = PlacementMove.objects.get(tenant=acme)
    assert (record.step, record.finished_at) == (step, None)
    acme.refresh_from_db()
    switched = STEPS.index(step) >= STEPS.index(SWITCH)
    assert acme.placement == (to[0] if switched else "shared")
    check = json.loads(
        subprocess.run(
            [sys.executable, "manage.py", "tenants", "check", "--json"],
            cwd=ROOT,
            env=child_environment(),
            capture_output=True,
            text=True,
            timeout=WAIT_LIMIT_SECONDS,
        ).stdout
    )
    about = [f for f in check["findings"] + check["warnings"] if "tenant acme: move" in f]
    assert len(about) == 1 and f"stopped after step {step}" in about[0]
    assert (about[0] in check["findings"]) == (step in FROZEN_STEPS)
    # Rows on both sides of an unfinished move are the move's, not stray rows.
    assert not [
        f for f in check["findings"] if "not placed there" in f or "rows in the shared" in f
    ]
    if step in FROZEN_STEPS:
        # Killed in the freeze: the tenant's writes stay refused (fail closed) until a rerun
        # or a rollback; its reads go on.
        with pytest.raises(OperationalError) as refused:
            _write(acme, "while killed")
        assert is_frozen_error(refused.value)
        assert app_rows(acme) == before
    elif not switched:
        # Not frozen: the tenant keeps writing while the move waits for its rerun.
        _write(acme, f"after a kill at {step}")
        before = app_rows(acme)

    rerun = move("acme", "--to", *to)
    assert rerun.returncode == 0, rerun.stderr
    record.refresh_from_db()
    assert (record.step, record.outcome) == ("done", "done")
    acme.refresh_from_db()
    assert (acme.placement, acme.placement_name) == to
    assert placed_rows(acme.pk).keys() == {there}
    assert app_rows(acme) == before
    assert triggers() == [] and private_rows() == (0, 0)

    # And back, killed at the same step.
    back = move("acme", "--to", "shared", kill_after=step)
    assert back.returncode == -signal.SIGKILL, back.stderr
    assert move("acme", "--to", "shared").returncode == 0
    assert placed_rows(acme.pk).keys() == {"public"}
    assert app_rows(acme) == before
    moves = PlacementMove.objects.filter(tenant=acme).order_by("id")
    assert moves[0].stats["verified"] == moves[1].stats["verified"]


@pytest.mark.parametrize("step", STEPS[: STEPS.index(SWITCH)])
def test_killed_before_the_switch_a_rollback_leaves_the_tenant_where_it_was(acme, step):
    before = app_rows(acme)
    assert move("acme", "--to", "schema", "pmove_one", kill_after=step).returncode == (
        -signal.SIGKILL
    )
    done = move("acme", "--rollback")
    assert done.returncode == 0, done.stderr
    assert f"rolled back at step {step}" in done.stdout
    record = PlacementMove.objects.get(tenant=acme)
    assert record.outcome == "rolled_back" and record.finished_at is not None
    acme.refresh_from_db()
    assert acme.placement == "shared"
    assert placed_rows(acme.pk).keys() == {"public"}
    assert triggers() == [] and private_rows() == (0, 0)
    _write(acme, "after the rollback")  # not frozen any more
    assert len(app_rows(acme)["workflows_workflow"]) == len(before["workflows_workflow"]) + 1


def test_after_the_switch_rollback_is_refused(acme):
    assert move("acme", "--to", "schema", "pmove_one", kill_after=SWITCH).returncode == (
        -signal.SIGKILL
    )
    refused = move("acme", "--rollback")
    assert refused.returncode == 1 and "run it again to finish" in refused.stderr
    assert move("acme", "--to", "shared").returncode == 1  # another target: refused
    assert move("acme", "--to", "schema", "pmove_one").returncode == 0
