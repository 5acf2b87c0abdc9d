"""The usage page in a real browser (Debian's Chromium through Playwright): a tenant admin of
A follows the admin's links to their tenant's usage, sees its charts (SVG drawn on the server)
and no figure or name of tenant B; B's page does not exist for them.

The data is written before the browser starts (Playwright's sync API runs an event loop in
this thread, inside which Django refuses ORM calls).
"""

from __future__ import annotations

import pytest

from tests.e2e.test_admin_browser import PASSWORD, launch, sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, databases=["default", "owner"]),
]

B_FIGURE = "987654"  # B's latency, in ms: on no page of A


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def tenants_with_usage(settings):
    from accounts.models import Membership, User
    from limits.usage import recorder
    from tenants.context import tenant_context
    from tenants.models import Tenant

    settings.TENANCY_USAGE_FLUSH_SECONDS = 3600  # only the figures written here
    alpha = Tenant.objects.create(slug="alpha", external_id="alpha", name="Alpha Corp")
    bravo = Tenant.objects.create(slug="bravo", external_id="bravo", name="Bravo Ltd")
    admin_a = User.objects.create_user(
        username="alpha-admin", password=PASSWORD, home_tenant=alpha, is_staff=True
    )
    with tenant_context(alpha):
        Membership.objects.create(user=admin_a, role="admin")
    for _ in range(41):
        recorder.add(tenant_id=alpha.pk, status=200, latency_ms=10, db_ms=2, queries=1)
    recorder.add(tenant_id=alpha.pk, status=503, latency_ms=10, db_ms=2, queries=1)
    recorder.add(tenant_id=bravo.pk, status=200, latency_ms=int(B_FIGURE), db_ms=1, queries=1)
    recorder.flush()
    return {"alpha": alpha, "bravo": bravo}


def test_a_tenant_admin_sees_their_usage_charts_and_nothing_of_b(live_server, tenants_with_usage):
    from playwright.sync_api import sync_playwright

    base = live_server.url.replace("localhost", "127.0.0.1")
    alpha, bravo = tenants_with_usage["alpha"], tenants_with_usage["bravo"]
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        sign_in(page, base, "alpha-admin")
        page.click("text=Limits and usage")
        rows = page.eval_on_selector_all("tr.tenant-row", "els => els.map(e => e.dataset.tenant)")
        assert rows == ["alpha"]
        page.click("tr.tenant-row >> text=usage")
        page.wait_for_url(f"{base}/admin/limits/tenantlimits/{alpha.pk}/usage/")

        totals = page.inner_text("#usage-totals")
        assert totals.startswith("Last 24 hours: 42 requests, 1 errors"), totals
        charts = page.eval_on_selector_all(
            "figure.usage-chart",
            "els => els.map(e => [e.dataset.title, e.querySelector('svg').getBBox().width])",
        )
        assert len(charts) == 6 and all(width > 0 for _, width in charts), charts
        titles = dict(
            page.eval_on_selector_all(
                "figure.usage-chart", "els => els.map(e => [e.dataset.title, e.dataset.total])"
            )
        )
        assert titles["Requests per minute, last 24 hours"] == "42"
        assert titles["Requests per day, last 30 days"] == "42"
        html = page.content()
        assert B_FIGURE not in html and "bravo" not in html.lower()

        response = page.goto(f"{base}/admin/limits/tenantlimits/{bravo.pk}/usage/")
        assert response.status == 404
        assert B_FIGURE not in page.content()
        browser.close()
