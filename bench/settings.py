"""Settings of a benchmark run: the project's settings plus the aliases the pairs compare.

- `runtime_1k` / `owner_1k`: the same roles on the 1,000-tenant dataset (pair 4);
- `plain`: the owner on Django's stock PostgreSQL backend, no tenancy at all (pair 3);
- `runtime_before_wall`: the runtime role on the backend as it was before the database wall
  (bench.before_wall: client-side binding, a plain setting, no signed scope), the baseline of
  pairs 2w and 3w;
- `owner`: the owner role (a benchmark builds its datasets; runtime processes never have it).
"""

import os

from ameide.database import owner_settings
from ameide.settings import *  # noqa: F403
from ameide.settings import DATABASES, env

DATABASES["owner"] = owner_settings(env)
_SMALL_DB = os.environ["AMEIDE_BENCH_DB_SMALL"]

DATABASES["runtime_1k"] = {**DATABASES["default"], "NAME": _SMALL_DB}
DATABASES["owner_1k"] = {**DATABASES["owner"], "NAME": _SMALL_DB, "TEST": {}}
DATABASES["plain"] = {
    **DATABASES["owner"],
    "ENGINE": "django.db.backends.postgresql",
    "TEST": {},
}
DATABASES["runtime_before_wall"] = {
    **DATABASES["default"],
    "ENGINE": "bench.before_wall",
    "OPTIONS": {
        key: value
        for key, value in DATABASES["default"].get("OPTIONS", {}).items()
        if key not in ("server_side_binding", "prepare_threshold")
    },
    "TEST": {},
}
