#!/bin/sh
# Container entry: `serve` (gunicorn), `migrate` (as the owner role), or any manage.py command.
# `migrate` creates or alters the runtime and break-glass roles (`tenants setup`) only with
# AMEIDE_SETUP_ROLES=true: on a managed PostgreSQL they are created by hand (docs/deployment.md).
set -e
case "$1" in
  serve)
    # Prometheus multi-process mode (docs/limits.md): the workers' files start empty.
    export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/ameide-metrics}"
    rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    exec gunicorn --config /app/deploy/gunicorn.conf.py ameide.wsgi ;;
  migrate)
    if [ "${AMEIDE_SETUP_ROLES:-false}" = "true" ]; then
      python manage.py tenants setup
    fi
    exec python manage.py migrate --no-input ;;
  *)
    exec python manage.py "$@" ;;
esac
