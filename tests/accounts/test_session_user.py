"""A bearer request's session user: read only when the request carries a session cookie."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from django.utils.functional import SimpleLazyObject

from accounts.callers import session_user
from accounts.sessions import SessionStore


def _untouchable():
    pytest.fail("the session's user was looked up for a request without a session cookie")


def test_without_a_session_cookie_the_user_is_not_looked_up():
    request = RequestFactory().get("/api/workflows/")
    request.session = SessionStore(session_key=None)
    request.user = SimpleLazyObject(_untouchable)

    assert session_user(request) is None


def test_with_a_session_cookie_the_signed_in_user_is_returned():
    request = RequestFactory().get("/api/workflows/")
    request.session = SessionStore(session_key="a-cookie-value")
    signed_in = SimpleLazyObject(lambda: type("U", (), {"is_authenticated": True})())
    request.user = signed_in

    assert session_user(request) is signed_in


def test_with_a_session_cookie_and_nobody_signed_in_there_is_no_user():
    request = RequestFactory().get("/api/workflows/")
    request.session = SessionStore(session_key="a-cookie-value")
    request.user = AnonymousUser()

    assert session_user(request) is None


def test_a_request_without_the_session_middleware_still_reads_its_user():
    request = RequestFactory().get("/api/workflows/")
    signed_in = type("U", (), {"is_authenticated": True})()
    request.user = signed_in

    assert session_user(request) is signed_in
