"""`manage.py tenants users` and `tenants members`: what each writes (through accounts.services,
audited), what access changes at the next request, and bad input refused with one clear line
and nothing written."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.models import Membership, User
from tenants.context import tenant_context
from tenants.models import AuditEvent, Tenant
from tests.tenants.cli_support import database_state, last_event, make_member, refused, tenants

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def stdin(monkeypatch):
    """Feed the command's stdin (what `--password-stdin` reads)."""

    def feed(text: str) -> None:
        monkeypatch.setattr("sys.stdin", io.StringIO(text))

    return feed


def role_in(tenant: Tenant, username: str) -> str | None:
    with tenant_context(tenant):
        membership = Membership.objects.filter(user__username=username).first()
    return membership.role if membership else None


# --- help ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("users",),
        ("users", "add"),
        ("users", "list"),
        ("users", "set-password"),
        ("users", "deactivate"),
        ("users", "activate"),
        ("members",),
        ("members", "alpha", "add"),
        ("members", "alpha", "list"),
        ("members", "alpha", "set-role"),
        ("members", "alpha", "remove"),
    ],
)
def test_every_account_subcommand_has_help(args, capsys):
    with pytest.raises(SystemExit) as exc:
        call_command("tenants", *args, "--help")
    assert exc.value.code == 0
    assert "tenants " + args[0] in capsys.readouterr().out


# --- users --------------------------------------------------------------------------------


def test_users_add_creates_a_local_user_who_can_sign_in(db, stdin):
    stdin(PASSWORD + "\n")
    out, _ = tenants(
        "users", "add", "carol", "--email", "Carol@Example.COM", "--first-name", "Carol",
        "--password-stdin", "--json",
    )  # fmt: skip
    created = json.loads(out)
    assert created["username"] == "carol" and created["email"] == "Carol@example.com"
    assert created["has_usable_password"] and created["home_tenant"] is None
    assert not created["is_staff"] and not created["is_superuser"] and "password" not in created
    event = last_event("user.create")
    assert event.actor.startswith("cli:users add (") and event.tenant_slug == ""
    assert event.details == {"username": "carol", "email": "Carol@example.com", "password": True}
    assert Client().login(username="carol", password=PASSWORD)


def test_users_add_without_a_password(db):
    out, _ = tenants("users", "add", "olga", "--no-password")
    assert out.strip() == "created user olga (no usable password)"
    assert not User.objects.get(username="olga").has_usable_password()


@pytest.mark.parametrize(
    ("args", "stdin_text", "match"),
    [
        (("users", "add", "new"), "", "No terminal to ask for the password"),
        (("users", "add", "bad name!", "--no-password"), "", "Invalid username"),
        (("users", "add", "x" * 151, "--no-password"), "", "Invalid username"),
        (("users", "add", "  ", "--no-password"), "", "Invalid username"),
        (("users", "add", "ANN", "--no-password"), "", "already exists"),
        (("users", "add", "new", "--email", "not-an-address", "--no-password"), "", "e-mail"),
        (("users", "add", "new", "--password-stdin"), "\n", "password is empty"),
        (("users", "add", "new", "--password-stdin", "--no-password"), "", "not allowed with"),
        (("users", "set-password", "nosuch", "--password-stdin"), "pw\n", "No user named"),
        (("users", "set-password", "ann"), "", "No terminal"),
        (("users", "deactivate", "nosuch"), "", "No user named"),
        (("users", "activate", "ann"), "", "already active"),
        (("users",), "", "required: ACTION"),
        (("users", "remove", "ann"), "", "invalid choice"),
    ],
)
def test_users_refuse_bad_input_and_write_nothing(tenant_a, stdin, args, stdin_text, match):
    make_member(tenant=tenant_a, username="ann")
    stdin(stdin_text)
    before = database_state()
    refused(*args, match=match)
    assert database_state() == before


def test_users_refuse_a_password_the_validators_reject(db, stdin, settings):
    settings.AUTH_PASSWORD_VALIDATORS = [
        {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"}
    ]
    stdin("short\n")
    before = database_state()
    refused("users", "add", "new", "--password-stdin", match="Password refused: .*too short")
    assert database_state() == before


def test_users_list_has_a_header_and_json(tenant_a):
    make_member(tenant=tenant_a, username="ann")
    User.objects.create_superuser(username="root", password=None, email="root@ops.example")
    lines = tenants("users", "list")[0].splitlines()
    assert lines[0].split() == ["username", "active", "platform", "home", "email"]
    assert lines[1].split() == ["ann", "yes", "no", "alpha"]
    assert lines[2].split() == ["root", "yes", "yes", "-", "root@ops.example"]
    listed = json.loads(tenants("users", "list", "--json")[0])
    assert [(u["username"], u["home_tenant"]) for u in listed] == [("ann", "alpha"), ("root", None)]


def test_set_password_changes_the_password_and_is_audited(tenant_a, stdin):
    make_member(tenant=tenant_a, username="ann")
    stdin(PASSWORD + "\n")
    assert tenants("users", "set-password", "ann", "--password-stdin")[0].strip() == (
        "password of ann set"
    )
    assert Client().login(username="ann", password=PASSWORD)
    event = last_event("user.password_set")
    assert event.details == {"username": "ann"} and event.actor.startswith("cli:users set-password")
    assert PASSWORD not in json.dumps(event.details)


def test_a_deactivated_user_loses_access_at_the_next_request(tenant_a):
    ann = make_member(tenant=tenant_a, username="ann")
    client = Client()
    client.force_login(ann)
    assert client.get("/api/me/").status_code == 200

    out, _ = tenants("users", "deactivate", "ann", "--reason", "left the company", "--json")
    assert json.loads(out)["is_active"] is False
    event = last_event("user.deactivate")
    assert event.reason == "left the company" and event.details == {"username": "ann"}
    assert client.get("/api/me/").status_code == 401  # the session no longer signs anyone in
    refused("users", "deactivate", "ann", match="already inactive")

    tenants("users", "activate", "ann")
    assert last_event("user.activate").details == {"username": "ann"}
    client.force_login(User.objects.get(username="ann"))
    assert client.get("/api/me/").status_code == 200


# --- members ------------------------------------------------------------------------------


def test_members_add_makes_a_tenant_admin_who_can_enter_the_admin(tenant_a, stdin):
    """The documented path: a user, then a membership with role admin, then sign in."""
    stdin(PASSWORD + "\n")
    tenants("users", "add", "carol", "--password-stdin")
    out, _ = tenants("members", "alpha", "add", "carol", "--role", "admin", "--json")
    member = json.loads(out)
    assert (member["tenant"], member["username"], member["role"]) == ("alpha", "carol", "admin")
    assert User.objects.get(username="carol").home_tenant == tenant_a
    event = last_event("membership.add")
    assert event.tenant_slug == "alpha" and event.actor.startswith("cli:members add (")
    assert event.details == {"username": "carol", "role": "admin", "home_tenant_set": True}

    browser = Client()
    assert browser.post("/accounts/login/", {"username": "carol", "password": PASSWORD})
    assert browser.get("/admin/").status_code == 200
    assert browser.get("/api/me/").json()["role"] == "admin"


def test_members_add_keeps_a_home_tenant_the_user_still_belongs_to(tenant_a, tenant_b):
    make_member(tenant=tenant_a, username="ann")
    out, _ = tenants("members", "bravo", "add", "ann")
    assert out.strip() == "ann is now member of bravo"
    assert User.objects.get(username="ann").home_tenant == tenant_a
    assert last_event("membership.add").details["home_tenant_set"] is False
    assert role_in(tenant_b, "ann") == "member"


def test_members_add_replaces_a_home_tenant_the_user_left(tenant_a, tenant_b):
    make_member(tenant=tenant_a, username="ann")
    tenants("members", "alpha", "remove", "ann")
    assert User.objects.get(username="ann").home_tenant == tenant_a  # kept: refusals audited
    tenants("members", "bravo", "add", "ann", "--role", "admin")
    assert User.objects.get(username="ann").home_tenant == tenant_b


def test_members_list_shows_only_that_tenant(tenant_a, tenant_b):
    make_member(tenant=tenant_a, username="ann", role="admin")
    make_member(tenant=tenant_a, username="arthur")
    make_member(tenant=tenant_b, username="bob")
    lines = tenants("members", "alpha", "list")[0].splitlines()
    assert lines[0].split() == ["username", "role", "since", "email"]
    assert [line.split()[:2] for line in lines[1:]] == [["ann", "admin"], ["arthur", "member"]]
    listed = json.loads(tenants("members", "bravo", "list", "--json")[0])
    assert [(m["tenant"], m["username"], m["role"]) for m in listed] == [("bravo", "bob", "member")]
    Tenant.objects.create(slug="empty", external_id="empty", name="Empty")
    assert tenants("members", "empty", "list")[0].strip() == "(no members in empty)"
    assert json.loads(tenants("members", "empty", "list", "--json")[0]) == []


def test_set_role_changes_what_the_admin_lets_in_at_the_next_request(tenant_a):
    ann = make_member(tenant=tenant_a, username="ann", role="admin")
    browser = Client()
    browser.force_login(ann)
    assert browser.get("/admin/").status_code == 200

    out, _ = tenants("members", "alpha", "set-role", "ann", "--role", "member", "--json")
    assert json.loads(out)["role"] == "member"
    assert last_event("membership.set_role").details == {
        "username": "ann",
        "from": "admin",
        "to": "member",
    }
    assert browser.get("/admin/").status_code == 302  # to the login page: not authorized

    audit_before = AuditEvent.objects.count()
    tenants("members", "alpha", "set-role", "ann", "--role", "member")  # no change
    assert AuditEvent.objects.count() == audit_before


def test_a_removed_member_loses_access_at_the_next_request(tenant_a, tenant_b):
    ann = make_member(tenant=tenant_a, username="ann")
    make_member(tenant=tenant_b, username="bob")
    browser = Client()
    browser.force_login(ann)
    assert browser.get("/api/me/").status_code == 200

    out, _ = tenants("members", "alpha", "remove", "ann", "--json")
    removed = json.loads(out)
    assert removed["removed"] is True and removed["username"] == "ann"
    assert last_event("membership.remove").details == {"username": "ann", "role": "member"}
    assert role_in(tenant_a, "ann") is None
    assert role_in(tenant_b, "bob") == "member"  # the other tenant is untouched
    assert browser.get("/api/workflows/").status_code == 403
    posted = browser.post("/api/workflows/", {"name": "x"}, content_type="application/json")
    assert posted.status_code == 403
    refusal = last_event("refused.cross_tenant")
    assert refusal.tenant_slug == "alpha" and refusal.details["code"] == "not_a_member"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("members", "nosuch", "add", "ann"), "No tenant with slug 'nosuch'"),
        (("members", "alpha", "add", "nosuch"), "No user named 'nosuch'"),
        (("members", "alpha", "add", "ann"), "already a member of 'alpha'"),
        (("members", "alpha", "add", "bob", "--role", "owner"), "invalid choice: 'owner'"),
        (("members", "alpha", "set-role", "bob", "--role", "admin"), "not a member of 'alpha'"),
        (("members", "alpha", "set-role", "ann"), "the following arguments are required: --role"),
        (("members", "alpha", "remove", "bob"), "not a member of 'alpha'"),
        (("members", "alpha"), "required: ACTION"),
        (("members",), "required: slug"),
        (("members", "gone", "add", "bob"), "is deleted"),
        (("members", "gone", "remove", "ann"), "is deleted"),
    ],
)
def test_members_refuse_bad_input_and_write_nothing(tenant_a, tenant_b, args, match):
    make_member(tenant=tenant_a, username="ann")
    make_member(tenant=tenant_b, username="bob")
    gone = Tenant.objects.create(slug="gone", external_id="gone", name="Gone", status="deleted")
    ann = User.objects.get(username="ann")  # global rows are read outside the tenant
    with tenant_context(gone):
        Membership.objects.create(user=ann)
    before = database_state()
    refused(*args, match=match)
    assert database_state() == before


@pytest.mark.parametrize(
    "argv",
    [
        ["members", "alpha", "add", "bob", "--role", "owner"],
        ["users", "frobnicate"],
        ["users", "add"],
    ],
)
def test_malformed_command_lines_get_a_usage_line_not_a_traceback(argv):
    """The real command line (no database needed: argparse refuses before any query)."""
    result = subprocess.run(
        [sys.executable, "manage.py", "tenants", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "usage: manage.py tenants" in result.stderr and "error:" in result.stderr
    assert "Traceback" not in result.stderr
