"""Schemathesis against the live app from its published schema, with two tenants' tokens."""

# Every check, every phase including the stateful one, a fixed seed and a bounded number of
# examples, over HTTP against the app served from a thread. The runs must end with no failed
# check (so no server error and no schema violation), and no answer to one tenant's token may
# carry a row of the other tenant.
#
# Two settings are not defaults, each because of something JSON Schema cannot say:
# - `allow-x00 = false`: PostgreSQL text cannot hold NUL, so every string with one is refused
#   (test_api_input.py proves that for every write).
# - POST /api/runs/ may answer 400 to schema-valid data: its `workflow` must name a workflow of
#   the caller's tenant, which a generated integer rarely does.
# `max_response_time`, the one check that needs a value, is left out: no timing thresholds.

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass

import pytest
import schemathesis
from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer
from django.core.wsgi import get_wsgi_application
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema

from accounts import admission, bearer, providers
from tenants.context import tenant_context, unscoped
from tests.keyserver import AUDIENCE, KeyServer
from workflows.models import Workflow, WorkflowRun

SEED = 20261201
MAX_EXAMPLES = 30  # per operation and phase; both runs together stay around a minute
STATEFUL_STEPS = 12
PEERS = ("alpha", "bravo")


@dataclass(frozen=True)
class Exchange:
    tenant: str | None
    method: str
    path: str
    status: int
    body: bytes


class RecordingApp:
    """The Django WSGI app, keeping every answer with the tenant whose token asked."""

    def __init__(self, app, tokens: dict[str, str]) -> None:
        self.app = app
        self.tenant_of = {f"Bearer {token}": tenant for tenant, token in tokens.items()}
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        seen: dict[str, int] = {}

        def capture(status, headers, exc_info=None):
            seen["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        result = self.app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        exchange = Exchange(
            tenant=self.tenant_of.get(environ.get("HTTP_AUTHORIZATION", "")),
            method=environ["REQUEST_METHOD"],
            path=environ.get("PATH_INFO", ""),
            status=seen.get("status", 0),
            body=body,
        )
        with self._lock:
            self.exchanges.append(exchange)
        return [body]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def live_app(tokens, monkeypatch):
    """The app on 127.0.0.1 with a recorder in front, one request at a time on one thread that
    keeps its database connection (as CONN_MAX_AGE > 0 does), closed when the server stops."""
    from django.db import connections

    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", None)
    app = RecordingApp(get_wsgi_application(), tokens)
    server = WSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
    server.set_app(app)

    def serve():
        try:
            server.serve_forever(poll_interval=0.05)
        finally:
            connections.close_all()

    thread = threading.Thread(target=serve)
    thread.daemon = True
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", app
    server.shutdown()
    server.server_close()
    thread.join()


def objects_in(body: bytes):
    """(kind, id, workflow id) of every workflow or run in a JSON answer."""
    try:
        data = json.loads(body)
    except ValueError:
        return
    items = data.get("results", [data]) if isinstance(data, dict) else []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or "id" not in item:
            continue
        if "input" in item and "workflow" in item:
            yield "run", item["id"], item["workflow"]
        elif "definition" in item:
            yield "workflow", item["id"], None


def owners_of_all_rows() -> dict[tuple[str, int], str]:
    with unscoped(reason="test: which tenant owns each row after the fuzz run"):
        rows = {
            ("workflow", pk): slug
            for pk, slug in Workflow.objects.values_list("id", "tenant__slug")
        }
        rows.update(
            {
                ("run", pk): slug
                for pk, slug in WorkflowRun.objects.values_list("id", "tenant__slug")
            }
        )
    return rows


@pytest.fixture
def tokens(settings, tenant_a, tenant_b):
    server = KeyServer()
    settings.OIDC_ISSUER = server.issuer
    settings.OIDC_AUDIENCE = [AUDIENCE]
    settings.OIDC_TENANT_CLAIM = "tenant_id"

    def reset():
        admission.reset()
        bearer.reset()
        providers.registry.reset()

    reset()
    now = int(time.time())
    signed = {
        slug: server.sign(
            server.claims(sub=f"fuzz-{slug}", tenant_id=slug, iat=now, exp=now + 3600)
        )
        for slug in PEERS
    }
    yield signed
    reset()
    server.close()


def config_for(wfc_path, *, peers: tuple[str, str], coverage: bool) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "workers": 1,
            "cache": {"enabled": False},
            # Requests go as the first peer; object_level_authorization replays its reads of
            # its own objects as the other peer, which must not get them.
            "auth": {"wfc": {"path": str(wfc_path), "user": peers[0], "peers": list(peers)}},
            "checks": {"enabled": True},
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "allow-x00": False,
                "database": "none",
                "deterministic": True,
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": coverage},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True, "max-steps": STATEFUL_STEPS},
            },
            "operations": [
                {
                    "include-name": "POST /api/runs/",
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": ["2xx", "400", "401", "403", "404"]
                        }
                    },
                }
            ],
        }
    )


def run_schemathesis(url: str, config: SchemathesisConfig) -> tuple[list[str], Counter]:
    """Every failed check and engine error of one run, and the requests per phase."""
    schema = schemathesis.openapi.from_url(f"{url}/api/schema/", config=config)
    problems, phases = [], Counter()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            phases[event.phase.name] += len(event.recorder.interactions)
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.status == Status.FAILURE:
                        case = event.recorder.cases[case_id].value
                        failure = check.failure_info.failure if check.failure_info else None
                        problems.append(
                            f"[{event.phase.name}] {check.name}: {case.method} "
                            f"{case.formatted_path} -> {getattr(failure, 'title', '')}: "
                            f"{getattr(failure, 'message', '')}"
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            info = getattr(event, "info", None)
            problems.append(
                f"error: {info.title}: {info.message}\n{info.traceback}"
                if info
                else f"error: {event.exception!r}"
            )
    return problems, phases


def seed_rows(tenant, slug: str) -> None:
    with tenant_context(tenant):
        for i in range(3):
            workflow = Workflow.objects.create(
                name=f"{slug} seeded {Workflow.objects.count()}-{i}", definition={"k": slug}
            )
            WorkflowRun.objects.create(workflow=workflow, input={"k": slug})


def rows_of(tenant) -> list:
    with tenant_context(tenant):
        return [
            list(Workflow.objects.order_by("id").values()),
            list(WorkflowRun.objects.order_by("id").values()),
        ]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_schemathesis_finds_nothing_and_no_tenant_sees_another(
    live_app, tokens, tenant_a, tenant_b, tmp_path, caplog
):
    caplog.set_level(logging.ERROR, logger="django.request")  # thousands of expected 4xx
    tenants = {"alpha": tenant_a, "bravo": tenant_b}
    wfc = tmp_path / "auth.json"
    wfc.write_text(
        json.dumps(
            {
                "auth": [
                    {
                        "name": slug,
                        "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {token}"}],
                    }
                    for slug, token in tokens.items()
                ]
            }
        )
    )
    url, app = live_app

    # Alpha with every phase, then bravo (the coverage phase's boundary values do not depend on
    # the tenant, so it runs once). Each run finds rows of both tenants, and must leave the
    # other tenant's exactly as they were.
    problems, phases, owners = [], Counter(), {}
    for peers, coverage in [(("alpha", "bravo"), True), (("bravo", "alpha"), False)]:
        for slug in peers:
            seed_rows(tenants[slug], slug)
        owners.update(owners_of_all_rows())  # before the run, which may delete its own rows
        other = tenants[peers[1]]
        untouched = rows_of(other)
        found, counted = run_schemathesis(url, config_for(wfc, peers=peers, coverage=coverage))
        problems += [f"as {peers[0]}: {problem}" for problem in found]
        phases += counted
        assert rows_of(other) == untouched, f"{peers[0]}'s run changed {peers[1]}'s rows"
        owners.update(owners_of_all_rows())

    assert problems == [], "\n".join(sorted(set(problems))[:40])
    assert all(phases[name] > 0 for name in ("COVERAGE", "FUZZING", "STATEFUL_TESTING")), phases
    statuses = Counter(exchange.status for exchange in app.exchanges)
    assert not any(status >= 500 for status in statuses), statuses
    by_tenant = Counter(exchange.tenant for exchange in app.exchanges)
    assert by_tenant["alpha"] > 100 and by_tenant["bravo"] > 100, by_tenant

    # No answer to one tenant's token carries a row of the other tenant.
    for exchange in app.exchanges:
        if exchange.status == 201 and exchange.tenant:
            for kind, pk, _ in objects_in(exchange.body):
                owners.setdefault((kind, pk), exchange.tenant)  # created, maybe deleted later
    leaks = [
        (exchange.tenant, exchange.method, exchange.path, kind, pk)
        for exchange in app.exchanges
        if exchange.tenant and 200 <= exchange.status < 300
        for kind, pk, workflow in objects_in(exchange.body)
        if owners.get((kind, pk)) != exchange.tenant
        or (workflow is not None and owners.get(("workflow", workflow)) != exchange.tenant)
    ]
    assert leaks == []
