"""The development issuer: discovery and JWKS served by the app, `manage.py tenants token`, and
its tokens going through the same verification path as any provider's (over HTTP, cached)."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import jwt
import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts import bearer
from accounts.conf import development_port
from accounts.dev_issuer import KEY_FILE, public_jwk, signing_key
from accounts.models import Membership, User
from tenants.context import tenant_context

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dev_issuer(settings, tmp_path):
    settings.DEBUG = True
    settings.DEV_ISSUER_ENABLED = True
    settings.DEV_ISSUER_URL = "http://127.0.0.1:8000/dev-issuer"
    settings.DEV_ISSUER_KEY_DIR = tmp_path / "devissuer"
    return settings


def mint(*args: str) -> str:
    out = io.StringIO()
    call_command("tenants", "token", *args, stdout=out)
    return out.getvalue().strip()


def test_key_is_generated_once_private_to_the_owner_and_reused(dev_issuer):
    first = signing_key()
    path = dev_issuer.DEV_ISSUER_KEY_DIR / KEY_FILE

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_jwk(signing_key()) == public_jwk(first)
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE]


def test_concurrent_first_uses_agree_on_one_key(dev_issuer):
    kids: list[str] = []
    threads = [
        threading.Thread(target=lambda: kids.append(public_jwk(signing_key())["kid"]))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(kids) == 4 and len(set(kids)) == 1


@pytest.mark.django_db
def test_token_command_prints_a_short_lived_rs256_token(dev_issuer, tenant_a):
    token = mint("alpha", "--user", "dora", "--admin", "--ttl", "120")

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "RS256" and header["kid"] == public_jwk(signing_key())["kid"]
    assert claims["iss"] == "http://127.0.0.1:8000/dev-issuer"
    assert claims["aud"] == "ameide-api" and claims["sub"] == "dora"
    assert claims["tenant_id"] == "alpha" and claims["roles"] == ["admin"]
    assert claims["exp"] - claims["iat"] == 120


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args,message",
    [
        (["nowhere", "--user", "x"], "No tenant with slug"),
        (["alpha", "--user", "x", "--ttl", "0"], "ttl must be between"),
        (["alpha", "--user", "x", "--ttl", "999999"], "ttl must be between"),
    ],
)
def test_token_command_refuses_bad_input(dev_issuer, tenant_a, args, message):
    with pytest.raises(CommandError, match=message):
        mint(*args)


@pytest.mark.django_db
def test_token_command_is_refused_with_debug_off(settings, tenant_a, tmp_path):
    settings.DEBUG = False
    settings.DEV_ISSUER_KEY_DIR = tmp_path

    with pytest.raises(CommandError, match="DEBUG off"):
        mint("alpha", "--user", "dora")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.django_db
@pytest.mark.parametrize("enabled,debug", [(False, True), (True, False), (False, False)])
def test_issuer_endpoints_are_404_unless_enabled_with_debug(client, settings, enabled, debug):
    settings.DEV_ISSUER_ENABLED = enabled
    settings.DEBUG = debug

    assert client.get("/dev-issuer/.well-known/openid-configuration").status_code == 404
    assert client.get("/dev-issuer/jwks").status_code == 404


@pytest.mark.django_db
def test_dev_issuer_is_not_trusted_when_disabled(dev_issuer, tenant_a, client):
    token = mint("alpha", "--user", "dora")
    dev_issuer.DEV_ISSUER_ENABLED = False

    response = client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 401
    assert 'error_description="unknown issuer"' in response["WWW-Authenticate"]


@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_token_then_api_call_against_a_live_server(dev_issuer, live_server, tenant_a, tenant_b):
    dev_issuer.DEV_ISSUER_URL = f"{live_server.url}/dev-issuer"
    discovery = requests.get(f"{live_server.url}/dev-issuer/.well-known/openid-configuration")
    assert discovery.json()["jwks_uri"] == f"{live_server.url}/dev-issuer/jwks"
    bearer.reset()
    admin_token = mint("alpha", "--user", "dora", "--admin")
    member_token = mint("bravo", "--user", "gus")

    responses = [
        requests.get(
            f"{live_server.url}/api/me/", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        for token in [admin_token, member_token] * 3
    ]
    tampered = admin_token.rsplit(".", 1)[0] + "." + member_token.rsplit(".", 1)[1]
    refused = requests.get(
        f"{live_server.url}/api/me/", headers={"Authorization": f"Bearer {tampered}"}, timeout=10
    )

    assert [r.status_code for r in responses] == [200] * 6
    assert [(r.json()["tenant"]["slug"], r.json()["role"]) for r in responses[:2]] == [
        ("alpha", "admin"),
        ("bravo", "member"),
    ]
    assert refused.status_code == 401
    # Discovery and JWKS were fetched over HTTP once, then served from the cache.
    assert bearer.jwks_cache().fetch_count == 2
    dora = User.objects.get(issuer=dev_issuer.DEV_ISSUER_URL, subject="dora")
    with tenant_context(tenant_a):
        assert Membership.objects.get(user=dora).role == Membership.Role.ADMIN


def dev_issuer_url_of_a_new_process(run_dir, **env: str) -> str:
    """DEV_ISSUER_URL as `manage.py` in another shell computes it (issue 10.4)."""
    environment = {
        k: v for k, v in os.environ.items() if k not in ("PORT", "DEV_ISSUER_URL", "DEBUG")
    }
    environment.update(
        AMEIDE_RUN_DIR=str(run_dir),
        DATABASE_URL="postgres://nobody@127.0.0.1:1/none",  # settings only; nothing connects
        SECRET_KEY="test",
        **env,
    )
    code = "import django; django.setup(); from django.conf import settings; "
    code += "print(settings.DEV_ISSUER_URL)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**environment, "DJANGO_SETTINGS_MODULE": "ameide.settings"},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_the_token_command_names_the_port_make_run_serves_on(tmp_path):
    assert dev_issuer_url_of_a_new_process(tmp_path) == "http://127.0.0.1:8000/dev-issuer"
    (tmp_path / "port").write_text("18811\n")  # what `make run PORT=18811` writes

    assert dev_issuer_url_of_a_new_process(tmp_path) == "http://127.0.0.1:18811/dev-issuer"
    assert dev_issuer_url_of_a_new_process(tmp_path, PORT="9000").endswith(":9000/dev-issuer")


@pytest.mark.parametrize("recorded", ["", "nonsense", "0", "70000"])
def test_an_unusable_recorded_port_means_the_default(tmp_path, recorded):
    (tmp_path / "port").write_text(recorded)

    assert development_port(port=None, run_dir=tmp_path) == 8000


def test_make_run_records_its_port():
    recipe = subprocess.run(
        ["make", "-n", "run", "PORT=18811"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout

    assert "echo 18811 > .run/port" in recipe


@pytest.mark.django_db
def test_unknown_issuer_names_the_expected_issuer_with_debug_on(dev_issuer, tenant_a, client):
    dev_issuer.DEV_ISSUER_URL = "http://127.0.0.1:18811/dev-issuer"
    token = mint("alpha", "--user", "dora")
    dev_issuer.DEV_ISSUER_URL = "http://127.0.0.1:8000/dev-issuer"  # the server's

    response = client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 401
    detail = response.json()["detail"]
    assert detail.startswith("Invalid token: unknown issuer.")
    assert "'http://127.0.0.1:18811/dev-issuer'" in detail
    assert "this server trusts: http://127.0.0.1:8000/dev-issuer" in detail
    assert response["WWW-Authenticate"].endswith('error_description="unknown issuer"')


@pytest.mark.django_db
def test_unknown_issuer_names_nothing_with_debug_off(dev_issuer, tenant_a, client):
    token = mint("alpha", "--user", "dora")
    dev_issuer.DEV_ISSUER_ENABLED = False
    dev_issuer.DEBUG = False

    response = client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid token: unknown issuer."
