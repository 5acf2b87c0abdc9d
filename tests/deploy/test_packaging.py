"""What a newcomer and an operator run before any request (issue 10.1, 10.10): the test tools
script, the lock file, the image's entry point and gunicorn settings, what the image leaves
out, and the compose file with its Keycloak realm."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def test_setup_test_tools_names_what_to_install_in_one_line_when_it_cannot(tmp_path):
    # A PATH without wrk, npm and apt-get: the script cannot install, so it must stop.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "id", "sha1sum", "cut"):
        (bin_dir / tool).symlink_to(subprocess.check_output(["which", tool], text=True).strip())
    stamp_dir = ROOT / "tests" / "idp" / "node_modules"
    before = sorted(stamp_dir.glob(".installed-*")) if stamp_dir.exists() else []

    result = subprocess.run(
        [str(bin_dir / "bash"), "scripts/setup-test-tools"],
        cwd=ROOT,
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "wrk" in lines[0] and "npm" in lines[0] and "apt-get install -y" in lines[0]
    after = sorted(stamp_dir.glob(".installed-*")) if stamp_dir.exists() else []
    assert after == before  # nothing ran


def test_make_test_and_ci_run_the_same_tools_script():
    recipe = subprocess.run(
        ["make", "--no-print-directory", "-n", "test"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ci = (ROOT / ".ci" / "run").read_text()

    assert recipe.splitlines()[0].strip().endswith("scripts/setup-test-tools")
    assert "scripts/setup-test-tools" in ci and "apt-get" not in ci


def locked_versions() -> dict[str, str]:
    text = (ROOT / "requirements.lock").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", text, flags=re.MULTILINE)
    return {canonicalize_name(name): version for name, version in pins}


def test_the_lock_file_pins_every_runtime_dependency_within_pyproject_ranges():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = locked_versions()
    text = (ROOT / "requirements.lock").read_text()

    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"{name}=={locked[name]} is outside {requirement.specifier}: run `make lock`"
        )
    # Every pin carries hashes (the image installs with --require-hashes).
    hashed = re.findall(r"^\S+==[^\n]*\\\n\s+--hash=sha256:", text, flags=re.MULTILINE)
    assert len(hashed) == len(locked)
    assert "pytest" not in locked  # development tools stay out of the image


def run_entrypoint(tmp_path, *args: str, **env: str) -> list[str]:
    """docker-entrypoint.sh with `python` and `gunicorn` replaced by recorders."""
    log = tmp_path / "calls"
    for tool in ("python", "gunicorn"):
        fake = tmp_path / tool
        fake.write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\n')
        fake.chmod(0o755)
    subprocess.run(
        ["sh", str(ROOT / "docker-entrypoint.sh"), *args],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", **env},
        check=True,
    )
    return log.read_text().splitlines()


def test_migrate_leaves_the_roles_alone_unless_asked(tmp_path):
    assert run_entrypoint(tmp_path, "migrate") == ["python manage.py migrate --no-input"]


def test_migrate_sets_up_the_roles_when_asked(tmp_path):
    assert run_entrypoint(tmp_path, "migrate", AMEIDE_SETUP_ROLES="true") == [
        "python manage.py tenants setup",
        "python manage.py migrate --no-input",
    ]


def test_serve_runs_gunicorn_with_the_image_settings(tmp_path):
    assert run_entrypoint(tmp_path, "serve") == [
        "gunicorn --config /app/deploy/gunicorn.conf.py ameide.wsgi"
    ]


def gunicorn_settings(**env: str) -> dict[str, str]:
    output = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py"]
        + ["--print-config", "ameide.wsgi"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(re.findall(r"^(\w+)\s+= (.*)$", output, flags=re.MULTILINE))


def test_gunicorn_has_timeouts_and_recycles_workers():
    defaults = gunicorn_settings()
    tuned = gunicorn_settings(GUNICORN_TIMEOUT="60", GUNICORN_MAX_REQUESTS="0")

    assert defaults["worker_class"] == "gthread"
    assert (defaults["timeout"], defaults["graceful_timeout"]) == ("30", "20")
    assert (defaults["max_requests"], defaults["max_requests_jitter"]) == ("2000", "200")
    assert (tuned["timeout"], tuned["max_requests"]) == ("60", "0")


def test_the_image_leaves_out_keys_state_tests_and_benchmarks():
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert {".devissuer", "tests", "bench", ".pgdata", ".run", ".venv", ".env"} <= ignored
    assert "--require-hashes" in dockerfile and "requirements.lock" in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    assert "--chown" not in dockerfile  # the code belongs to root, not to the runtime user


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_runs_postgresql_keycloak_the_migration_and_the_app():
    services = compose()["services"]

    assert {"db", "keycloak", "migrate", "demo", "app"} <= set(services)
    assert services["migrate"]["environment"]["AMEIDE_SETUP_ROLES"] == "true"
    assert "AMEIDE_SETUP_ROLES" not in services["app"]["environment"]
    app_env = services["app"]["environment"]
    assert "ameide_owner" not in app_env["DATABASE_URL"] + app_env["DATABASE_OWNER_URL"]


def test_the_compose_realm_carries_the_tenant_mapper_the_app_expects():
    services = compose()["services"]
    volume = services["keycloak"]["volumes"][0].split(":")[0]
    realm = json.loads((ROOT / volume).read_text())
    client = next(c for c in realm["clients"] if c["clientId"] == "ameide")
    mappers = {m["protocolMapper"]: m["config"] for m in client["protocolMappers"]}
    app_env = services["app"]["environment"]
    hostname = services["keycloak"]["environment"]["KC_HOSTNAME"]

    tenant = mappers["oidc-usermodel-attribute-mapper"]
    assert tenant["user.attribute"] == tenant["claim.name"] == "tenant_id"
    assert tenant["id.token.claim"] == tenant["access.token.claim"] == "true"
    assert mappers["oidc-audience-mapper"]["included.custom.audience"] == app_env["OIDC_AUDIENCE"]
    assert app_env["OIDC_ISSUER"] == f"{hostname}/realms/{realm['realm']}"
    assert app_env["OIDC_RP_CLIENT_SECRET"] == client["secret"]
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"
    # Keycloak 24+ drops user attributes its user profile does not declare.
    profile = realm["components"]["org.keycloak.userprofile.UserProfileProvider"][0]
    declared = json.loads(profile["config"]["kc.user.profile.config"][0])["attributes"]
    assert "tenant_id" in {attribute["name"] for attribute in declared}
    from workflows.management.commands.demo import TENANTS

    assert {u["attributes"]["tenant_id"][0] for u in realm["users"]} <= set(TENANTS)


def test_the_app_starts_with_the_compose_environment():
    env = {k: v for k, v in compose()["services"]["app"]["environment"].items()}
    env = {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", v) for k, v in env.items()}
    code = "import django; django.setup(); from django.conf import settings; "
    code += "print(settings.OIDC_ISSUER, settings.DEBUG)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "ameide.settings", **env},
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["http://localhost:8080/realms/ameide", "False"]
