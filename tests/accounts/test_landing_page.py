"""Where a browser lands after sign-in (issue 10.5): a page that works for every signed-in user,
never an API answer of 401."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import make_member

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def sign_in(username: str) -> tuple[Client, object]:
    client = Client()
    response = client.post(
        "/accounts/login/", {"username": username, "password": "pw"}, follow=True
    )
    return client, response


def test_a_member_lands_on_a_page_naming_their_tenant_and_role(tenant_a):
    make_member(tenant=tenant_a, username="ann", role="admin")

    _, landed = sign_in("ann")

    assert landed.redirect_chain == [("/", 302)]
    assert landed.status_code == 200
    page = landed.content.decode()
    assert "Signed in as <strong>ann</strong>" in page and "Alpha Corp" in page
    assert 'href="/api/me/"' in page and 'href="/api/docs/"' in page
    assert 'href="/admin/"' not in page  # a tenant admin needs is_staff to enter the admin


def test_a_platform_admin_lands_on_a_page_that_leads_to_the_admin(db):
    from accounts.models import User

    User.objects.create_superuser(username="root", password="pw", email="r@ops.example")

    _, landed = sign_in("root")

    assert landed.status_code == 200
    assert 'id="platform-admin"' in landed.content.decode()
    assert 'href="/admin/"' in landed.content.decode()


def test_an_account_without_a_tenant_is_told_so(db):
    from accounts.models import User

    User.objects.create_user(username="nobody", password="pw")

    _, landed = sign_in("nobody")

    assert landed.status_code == 200 and 'id="no-tenant"' in landed.content.decode()


def test_anonymous_callers_are_sent_to_the_login_page(db):
    response = Client().get("/")

    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/"
