"""Where the benchmark runs: its own databases, never the application's, and DEBUG off."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_DB = "ameide_bench"


def database_names(*, full: bool) -> dict[str, str]:
    """The benchmark's databases: the main dataset, the 1,000-tenant one and pair 7's.

    Quick and full datasets live in databases of their own, so alternating between the two
    modes reuses both instead of rebuilding one over the other.
    """
    main = os.environ.get("AMEIDE_BENCH_DB", DEFAULT_DB) + ("_full" if full else "")
    return {
        "main": main,
        "small": f"{main}_1k",
        "ours_p7": f"{main}_p7",
        "schemas_p7": f"{main}_dt",
    }


def _with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def configure(*, full: bool = False, settings_module: str = "bench.settings") -> dict[str, str]:
    """Point Django at the benchmark databases before settings are imported.

    With DATABASE_URL (and DATABASE_OWNER_URL) set, the same servers and roles are used with
    the database name replaced, so a benchmark never writes into the application's database.
    DEBUG is forced off: with it on Django records every query, which is not what runs in
    production and would dominate the per-query figures.
    """
    import environ

    # Load .env first (as settings would), so that a DATABASE_URL kept there is rewritten too.
    environ.Env.read_env(PROJECT_ROOT / ".env", overwrite=False)
    names = database_names(full=full)
    os.environ["AMEIDE_BENCH_FULL"] = "1" if full else ""
    os.environ["AMEIDE_DB_NAME"] = names["main"]
    os.environ["AMEIDE_BENCH_DB_SMALL"] = names["small"]
    for variable in ("DATABASE_URL", "DATABASE_OWNER_URL"):
        if os.environ.get(variable):
            os.environ[variable] = _with_database(os.environ[variable], names["main"])
    os.environ["DEBUG"] = "false"
    # The development issuer is refused with DEBUG off; pair 6 brings its own issuer.
    os.environ["DEV_ISSUER_ENABLED"] = "false"
    os.environ["LOG_LEVEL"] = "ERROR"
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    return names
