#!/bin/sh
# Container entry: `serve` (gunicorn) or `migrate` (as the owner role), or any manage.py command.
set -e
case "$1" in
  serve)
    exec gunicorn ameide.wsgi --bind 0.0.0.0:8000 -k gthread --threads "${GUNICORN_THREADS:-8}" \
      --workers "${GUNICORN_WORKERS:-2}" --access-logfile - ;;
  migrate)
    python manage.py tenants setup
    exec python manage.py migrate --no-input ;;
  *)
    exec python manage.py "$@" ;;
esac
