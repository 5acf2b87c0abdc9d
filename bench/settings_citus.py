"""Settings of `python -m bench --citus`: the benchmark's aliases on the cluster's coordinator
(default/owner: 10,000 tenants, runtime_1k/owner_1k: 1,000), plus `one`/`owner_one`, the
10,000-tenant dataset in a database without Citus on the same server (bench.pairs_citus)."""

import os

from bench.settings import *  # noqa: F403
from bench.settings import DATABASES

_ONE_DB = os.environ["AMEIDE_BENCH_DB_ONE"]

DATABASES["one"] = {**DATABASES["default"], "NAME": _ONE_DB}
DATABASES["owner_one"] = {**DATABASES["owner"], "NAME": _ONE_DB, "TEST": {}}
