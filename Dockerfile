# syntax=docker/dockerfile:1
# Build:   docker build -t ameide .
# Migrate: docker run --rm -e DATABASE_URL=... -e DATABASE_OWNER_URL=... ameide migrate
# Serve:   docker run -p 8000:8000 -e DATABASE_URL=... -e SECRET_KEY=... ameide
# Settings and the compose file: docs/deployment.md.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.lock /tmp/requirements.lock
# Exactly the locked versions, each checked against its hash (`make lock` refreshes the file).
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps \
       -r /tmp/requirements.lock

FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=ameide.settings STATIC_ROOT=/app/static
RUN groupadd --system --gid 10001 app && useradd --system --uid 10001 --gid app --home-dir /app app
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
# Owned by root, so the runtime user can read the code and static files but change none of it.
COPY . /app
RUN SECRET_KEY=build DATABASE_URL=postgres://build@localhost/build \
    python manage.py collectstatic --no-input -v 0
USER 10001:10001
EXPOSE 8000
# /healthz: the process answers (no database call; /readyz is for the load balancer).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["/app/docker-entrypoint.sh"]
CMD ["serve"]
