"""/api/docs/ works offline (issue 10.6): Swagger UI from drf-spectacular-sidecar's static files,
no CDN, and a schema that declares the bearer scheme, generated without a warning."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db


def test_docs_page_references_only_local_assets_that_are_served():
    client = Client()
    page = client.get("/api/docs/")
    html = page.content.decode()

    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    assert not re.search(r"https?://|//cdn|@latest", html), "an asset from outside"
    for asset in assets:
        assert asset.startswith("/static/"), asset
        response = client.get(asset)
        assert response.status_code == 200, asset
        response.close()


def test_schema_declares_the_bearer_scheme_on_every_operation():
    schema = Client().get("/api/schema/", {"format": "json"}).json()

    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    operations = [op for path in schema["paths"].values() for op in path.values()]
    assert operations
    for operation in operations:
        assert {"bearerAuth": []} in operation["security"], operation["operationId"]


def test_schema_generation_emits_no_warning(tmp_path):
    err = io.StringIO()
    # --fail-on-warn: any warning (an unresolved authenticator, a guessed type) fails.
    call_command("spectacular", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"), stderr=err)

    assert "Warning" not in err.getvalue()
