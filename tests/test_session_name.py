"""The test session's database name: one per checkout unless AMEIDE_TEST_DB_NAME gives one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.db import connections

from tests import dedicated


def test_two_checkouts_are_given_two_names(monkeypatch):
    monkeypatch.delenv("AMEIDE_TEST_DB_NAME", raising=False)
    names = []
    for root in ("/work/main", "/tmp/fresh-check-clone"):
        monkeypatch.setattr(dedicated, "PROJECT_ROOT", Path(root))
        names.append(dedicated.session_name())
    assert names[0] != names[1]
    for name in names:
        assert re.fullmatch(r"test_ameide_[0-9a-f]{6}", name)
        # The longest database named after it, within PostgreSQL's 63 bytes.
        assert len(f"{name}_placed_{dedicated.FAR}") <= 63


def test_the_variable_names_it(monkeypatch):
    monkeypatch.setenv("AMEIDE_TEST_DB_NAME", "test_chosen")
    assert dedicated.session_name() == "test_chosen"


@pytest.mark.django_db
def test_this_session_runs_in_it():
    assert connections["default"].settings_dict["NAME"] == dedicated.session_name()
