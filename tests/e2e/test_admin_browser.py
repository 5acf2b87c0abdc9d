"""The admin in a real browser (Debian's Chromium through Playwright) against a live server:
a tenant admin of A signs in with a password and finds no trace of B on any page of tenant
models; a platform admin acts as A with a reason, sees the banner, and the audit row appears.

The data is written before the browser starts and checked after it stops: Playwright's sync
API runs an event loop in this thread, inside which Django refuses ORM calls.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from django.contrib import admin

from tenants.admin_site import model_admins_of_tenant_models
from tenants.context import tenant_context

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, databases=["default", "owner"]),
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECRET = "SECRET-B"
B_TRACES = (SECRET, "Bravo Ltd", "bravo")
PASSWORD = "a-long-browser-password"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def two_tenants():
    """Tenant A with its admin and objects; tenant B with SECRET-B objects of every model."""
    from accounts.models import Membership, User
    from tenants.models import Tenant
    from workflows.models import Workflow, WorkflowRun

    alpha = Tenant.objects.create(slug="alpha", external_id="alpha", name="Alpha Corp")
    bravo = Tenant.objects.create(slug="bravo", external_id="bravo", name="Bravo Ltd")
    admin_a = User.objects.create_user(
        username="alpha-admin", password=PASSWORD, home_tenant=alpha, is_staff=True
    )
    member_a = User.objects.create_user(username="alpha-member", home_tenant=alpha)
    user_b = User.objects.create_user(
        username=f"{SECRET}-user", home_tenant=bravo, email=f"{SECRET}@bravo.example"
    )
    User.objects.create_superuser(username="root", password=PASSWORD, email="root@ops.example")
    with tenant_context(bravo):
        Membership.objects.create(user=user_b, role="admin")
        wb = Workflow.objects.create(name=f"{SECRET}-workflow", owner=user_b)
        rb = WorkflowRun.objects.create(workflow=wb, input={"secret": SECRET})
    with tenant_context(alpha):
        Membership.objects.create(user=admin_a, role="admin")
        Membership.objects.create(user=member_a, role="member")
        wa = Workflow.objects.create(name="alpha-flow", owner=admin_a)
        ra = WorkflowRun.objects.create(workflow=wa)
        a_objects = {
            model: list(model.objects.values_list("pk", flat=True))
            for model in model_admins_of_tenant_models(admin.site)
        }
    return {
        "alpha": alpha,
        "a_objects": a_objects,
        "b_workflow": wb.pk,
        "b_run": rb.pk,
        "a_run": ra,
    }


def launch(playwright):
    if not os.access(CHROMIUM, os.X_OK):
        # One line instead of Playwright's error: what is missing and how to get it.
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/setup-test-tools as root "
            "(or apt-get install -y chromium)",
            pytrace=False,
        )
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")


def assert_no_trace_of_b(page, where: str) -> str:
    html = page.content()
    for needle in B_TRACES:
        assert needle not in html, f"{needle!r} on {where}"
    return html


def test_a_tenant_admin_sees_no_trace_of_b_on_any_admin_page(live_server, two_tenants):
    from playwright.sync_api import sync_playwright

    base = live_server.url.replace("localhost", "127.0.0.1")
    visited = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        sign_in(page, base, "alpha-admin")
        assert "Tenant: Alpha Corp (alpha)" in page.inner_text("#tenancy-banner")
        assert_no_trace_of_b(page, "index")
        # The sweep reads HTML only: skipping style sheets and scripts keeps it fast.
        page.route("**/static/**", lambda route: route.abort())
        for model, pks in two_tenants["a_objects"].items():
            prefix = f"{base}/admin/{model._meta.app_label}/{model._meta.model_name}/"
            urls = [prefix, f"{prefix}?q=a", f"{prefix}?_popup=1&_to_field=id", f"{prefix}add/"]
            for pk in pks:
                urls += [f"{prefix}{pk}/change/", f"{prefix}{pk}/delete/", f"{prefix}{pk}/history/"]
            for url in urls:
                response = page.goto(url)
                assert response.status in (200, 403), url  # 403: adding members (sign-in does)
                assert_no_trace_of_b(page, url)
                visited.append(url)
            # Every filter link of the change list, as a person would click them.
            page.goto(prefix)
            links = page.eval_on_selector_all("#changelist-filter a", "els => els.map(e => e.href)")
            for link in sorted(set(links)):
                page.goto(link)
                assert_no_trace_of_b(page, link)
                visited.append(link)

        # Autocomplete: open the owner drop-down of a workflow and read what it offers.
        page.unroute("**/static/**")
        workflow_pk = two_tenants["a_objects"][_model("workflows.Workflow")][0]
        page.goto(f"{base}/admin/workflows/workflow/{workflow_pk}/change/")
        page.click("#id_owner + .select2 .select2-selection")
        page.wait_for_selector(".select2-results__option:not(.loading-results)")
        offered = page.inner_text(".select2-results")
        assert "alpha-admin" in offered and "alpha-member" in offered
        assert SECRET not in offered
        for field in (
            "workflows&model_name=workflow&field_name=owner",
            "accounts&model_name=membership&field_name=user",
            "workflows&model_name=workflowrun&field_name=workflow",
        ):
            page.goto(f"{base}/admin/autocomplete/?app_label={field}&term=")
            results = json.loads(page.inner_text("body"))["results"]
            assert results and not any(SECRET in item["text"] for item in results), field

        # Raw-id pop-up: the magnifier next to a run's workflow opens the workflow list.
        page.goto(f"{base}/admin/workflows/workflowrun/{two_tenants['a_run'].pk}/change/")
        with page.expect_popup() as popup_info:
            page.click("#lookup_id_workflow")
        popup = popup_info.value
        popup.wait_for_load_state()
        assert "alpha-flow" in assert_no_trace_of_b(popup, "raw-id popup")
        popup.close()

        # B's objects answer like missing ones.
        for path in (
            f"workflows/workflow/{two_tenants['b_workflow']}/change/",
            f"workflows/workflowrun/{two_tenants['b_run']}/change/",
        ):
            page.goto(f"{base}/admin/{path}")
            assert page.url == f"{base}/admin/"
            assert re.search(r"with ID “\d+” doesn’t exist", page.inner_text("ul.messagelist"))
        browser.close()
    assert len(visited) > 25


def _model(label: str):
    from django.apps import apps

    return apps.get_model(label)


def test_a_platform_admin_acts_as_a_tenant_with_a_reason_and_it_is_audited(
    live_server, two_tenants
):
    from playwright.sync_api import sync_playwright

    from tenants.models import AuditEvent

    base = live_server.url.replace("localhost", "127.0.0.1")
    reason = "support ticket 4711"
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        sign_in(page, base, "root")
        assert "no tenant selected" in page.inner_text("#tenancy-banner")
        page.goto(f"{base}/admin/workflows/workflow/")
        assert "Choose a tenant first" in page.content()
        page.click("#choose-tenant")
        page.select_option("#id_tenant", label="alpha")
        page.fill("#id_reason", reason)
        page.click("#act-as-form input[type=submit]")
        page.wait_for_url(f"{base}/admin/workflows/workflow/")
        banner = page.inner_text("#tenancy-banner")
        assert "Acting as Alpha Corp (alpha)" in banner and reason in banner
        assert "alpha-flow" in assert_no_trace_of_b(page, "workflows while acting")

        page.goto(f"{base}/admin/tenants/auditevent/?action=act_as.start")
        rows = page.inner_text("#result_list")
        assert "act_as.start" in rows and "root" in rows and reason in rows

        page.click("#act-as-stop")
        page.wait_for_url(f"{base}/admin/")
        assert "Acting as" not in page.inner_text("#tenancy-banner")
        assert "no tenant selected" in page.inner_text("#tenancy-banner")
        browser.close()

    start = AuditEvent.objects.get(action="act_as.start")
    assert (start.actor, start.tenant_slug, start.reason) == ("root", "alpha", reason)
    assert AuditEvent.objects.filter(action="act_as.stop", tenant_slug="alpha").count() == 1
