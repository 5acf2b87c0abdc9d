"""The project's log lines (issues 10.7, 14): JSON lines naming the tenant, user and request id,
a refused admin page logs one line without a traceback, and in development no line is printed
twice."""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.test import Client

from tests.conftest import make_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def log_output():
    """What the project's console handler (settings.LOGGING) writes, during the test."""
    handler = next(h for h in logging.getLogger().handlers if h.name == "console")
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def test_an_api_line_names_the_tenant_of_the_request(client_a, log_output):
    assert client_a.get("/api/workflows/987654/").status_code == 404

    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    found = [line for line in lines if line["message"].startswith("Not Found")]
    assert len(found) == 1, log_output.getvalue()
    assert found[0]["tenant"] == "alpha" and "/api/workflows/987654/" in found[0]["message"]
    # The request's own line: the tenant, the user and the request id the client sent.
    (request,) = [line for line in lines if line["logger"] == "ameide.request"]
    assert (request["tenant"], request["user"], request["status"]) == ("alpha", "ann", 404)
    assert request["request_id"] == found[0]["request_id"] != "-"


def test_a_tenant_admin_refused_an_admin_page_logs_one_line_without_traceback(
    tenant_a, log_output, settings
):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    admin = make_member(tenant=tenant_a, username="alpha-admin", role="admin")
    admin.is_staff = True
    admin.save()
    client = Client()
    client.force_login(admin)

    assert client.get("/admin/tenants/tenant/").status_code == 403

    output = log_output.getvalue()
    assert "Forbidden" in output and '"tenant": "alpha"' in output, output
    assert "Traceback" not in output and "PermissionDenied" not in output


def test_an_api_line_carries_the_request_id_the_client_sent(client_a, log_output):
    client_a.get("/api/workflows/", HTTP_X_REQUEST_ID="trace-4711")
    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    (request,) = [line for line in lines if line["logger"] == "ameide.request"]
    assert request["request_id"] == "trace-4711" and request["tenant"] == "alpha"


def test_a_command_line_names_its_user_and_command_id(tenant_a, log_output, settings):
    from django.core.management import call_command

    logging.getLogger("ameide.command").setLevel(logging.INFO)
    try:
        call_command("tenants", "limits", "alpha", stdout=io.StringIO())
    finally:
        logging.getLogger("ameide.command").setLevel(logging.NOTSET)
    lines = [json.loads(line) for line in log_output.getvalue().splitlines()]
    (line,) = [line for line in lines if line["logger"] == "ameide.command"]
    assert line["user"].startswith("cli:limits") and len(line["request_id"]) == 32


def test_a_server_error_keeps_its_traceback(log_output):
    logger = logging.getLogger("django.request")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.error("Internal Server Error: /x", exc_info=True, extra={"status_code": 500})

    assert "Traceback" in log_output.getvalue() and "RuntimeError: boom" in log_output.getvalue()


@pytest.mark.parametrize(
    "name,level", [("django.request", logging.WARNING), ("django.server", logging.INFO)]
)
def test_in_development_a_line_reaches_one_handler(settings, name, level):
    settings.DEBUG = True  # Django's own console handler prints only with DEBUG on
    record = logging.LogRecord(name, level, __file__, 1, "x", None, None)
    logger = logging.getLogger(name)
    assert logger.isEnabledFor(level)  # runserver's request lines are not lost either
    handlers = []
    while logger is not None:
        handlers += [h for h in logger.handlers if h.filter(record)]
        logger = logger.parent if logger.propagate else None

    assert [h.name for h in handlers if not _is_pytest_capture(h)] == ["console"]


def _is_pytest_capture(handler: logging.Handler) -> bool:
    return type(handler).__module__.startswith("_pytest")
