"""The tenancy linter: `manage.py check` passes on the project and names each broken model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_check(*extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_project_passes_the_tenancy_checks():
    result = run_check()
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_broken_models_are_reported():
    result = run_check("--settings", "tests.tenancy_broken.settings")
    assert result.returncode != 0
    out = result.stderr
    expected = [
        ("tenancy_broken.Orphan", "tenants.E001"),
        ("tenancy_broken.GloballyUnique", "tenants.E004"),
        ("tenancy_broken.GloballyUnique", "tenants.E006"),
        ("tenancy_broken.WrongManagers", "tenants.E002"),
        ("tenancy_broken.WrongManagers", "tenants.E006"),
        ("tenancy_broken.Tagged_peers", "tenants.E007"),
        ("tenancy_broken.ExtraManager", "tenants.E009"),
        ("tenancy_broken.PointsIntoTenants", "tenants.E010"),
    ]
    for label, code in expected:
        assert any(label in line and code in line for line in out.splitlines()), (label, code)
    # The project's own models stay clean even with the broken app loaded.
    assert "workflows." not in out and "accounts." not in out
