"""The image's gunicorn with DEBUG off behind a TLS-terminating proxy that is not on loopback
(issue 10.3): the admin's login POST passes CSRF once the proxy settings say what the proxy
sends, and the admin's static files are served (WhiteNoise), collected or not."""

from __future__ import annotations

import re

import pytest
import requests

from tests.deploy.support import collect_static, production_server
from tests.rls.support import COMMITTED

pytestmark = [COMMITTED, pytest.mark.slow]

PUBLIC = "app.example"
PASSWORD = "a-long-admin-password"
# gunicorn itself trusts X-Forwarded-Proto from loopback only; the test client is on loopback,
# so gunicorn is told the proxy is elsewhere, as it is in a container network.
ELSEWHERE = {"FORWARDED_ALLOW_IPS": "192.0.2.1"}


@pytest.fixture
def platform_admin(db):
    from accounts.models import User

    return User.objects.create_superuser(username="root", password=PASSWORD, email="r@ops.example")


def admin_login(base: str, headers: dict[str, str]) -> requests.Response:
    """GET the admin's login form and POST it back as a browser behind the proxy would."""
    page = requests.get(f"{base}/admin/login/?next=/admin/", headers=headers, timeout=10)
    assert page.status_code == 200, page.text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return requests.post(
        f"{base}/admin/login/?next=/admin/",
        data={"csrfmiddlewaretoken": token, "username": "root", "password": PASSWORD},
        headers={**headers, "Origin": f"https://{PUBLIC}"},
        cookies={"csrftoken": page.cookies["csrftoken"]},
        allow_redirects=False,
        timeout=10,
    )


# What the proxy sends, and the settings that make the app trust it.
PROXIES = {
    "forwards the host": (
        {"Host": PUBLIC, "X-Forwarded-Proto": "https"},
        {"TRUST_X_FORWARDED_PROTO": "true"},
    ),
    "rewrites the host, sends X-Forwarded-Host": (
        {"Host": "app:8000", "X-Forwarded-Host": PUBLIC, "X-Forwarded-Proto": "https"},
        {"TRUST_X_FORWARDED_PROTO": "true", "USE_X_FORWARDED_HOST": "true"},
    ),
    "rewrites the host": (
        {"Host": "app:8000", "X-Forwarded-Proto": "https"},
        {"TRUST_X_FORWARDED_PROTO": "true", "CSRF_TRUSTED_ORIGINS": f"https://{PUBLIC}"},
    ),
}


HOSTS = {"ALLOWED_HOSTS": f"{PUBLIC},app"}


def test_admin_login_fails_csrf_behind_the_proxy_without_the_settings(platform_admin):
    with production_server(**ELSEWHERE, **HOSTS) as base:
        refused = {proxy: admin_login(base, headers) for proxy, (headers, _) in PROXIES.items()}

    for response in refused.values():
        assert response.status_code == 403 and "CSRF verification failed" in response.text


@pytest.mark.parametrize("proxy", list(PROXIES))
def test_admin_login_passes_csrf_behind_the_proxy_when_configured(platform_admin, proxy):
    headers, configured = PROXIES[proxy]
    with production_server(**ELSEWHERE, **HOSTS, **configured) as base:
        signed_in = admin_login(base, headers)
        admin = requests.get(
            f"{base}/admin/", headers=headers, cookies=signed_in.cookies, timeout=10
        )

    assert signed_in.status_code == 302, signed_in.text
    assert signed_in.headers["Location"] == "/admin/"
    assert admin.status_code == 200 and 'id="user-tools"' in admin.text


def test_admin_static_files_under_gunicorn_without_and_with_collectstatic(tmp_path):
    collected = tmp_path / "static"
    collect_static(collected)
    for static_root in ("", str(collected)):
        with production_server(STATIC_ROOT=static_root) as base:
            css = requests.get(f"{base}/static/admin/css/base.css", timeout=10)
            docs_js = requests.get(
                f"{base}/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
                timeout=10,
            )
        assert css.status_code == 200 and "text/css" in css.headers["Content-Type"], static_root
        assert css.text == (collected / "admin" / "css" / "base.css").read_text()
        assert docs_js.status_code == 200, static_root
