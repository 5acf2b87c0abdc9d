"""gunicorn settings of the image (docker-entrypoint.sh `serve`), each from the environment."""

import os


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
worker_class = "gthread"
workers = _int("GUNICORN_WORKERS", 2)
threads = _int("GUNICORN_THREADS", 8)
# A request that runs longer than this is killed with its worker; the database's own limit
# (TENANCY_STATEMENT_TIMEOUT_MS, 15 s) is below it, so a slow query fails as a query first.
timeout = _int("GUNICORN_TIMEOUT", 30)
# On SIGTERM (a deploy, `docker stop`), requests in flight get this long to finish.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 20)
# Workers are replaced after this many requests (plus up to the jitter, so that they do not
# all restart at once): bounds the memory a slow leak can take. 0 turns it off.
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 200)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
accesslog = "-"
errorlog = "-"


# Prometheus multi-process mode (limits.metrics): with PROMETHEUS_MULTIPROC_DIR set, every
# worker writes its figures to files there and /metrics adds them up; the directory must be
# empty when the server starts (docker-entrypoint.sh empties it).
def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
