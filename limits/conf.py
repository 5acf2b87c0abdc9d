"""The limit keys, their validation, and the plans of settings.TENANCY_PLANS."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.conf import settings

from limits.errors import LimitInputError

# key -> (minimum, maximum, description). All values are integers.
KEYS: dict[str, tuple[int, int, str]] = {
    "statement_timeout_ms": (100, 600_000, "ceiling of one SQL statement of the tenant"),
    "requests_per_second": (1, 100_000, "sustained API requests per second"),
    "burst": (1, 1_000_000, "API requests admitted at once above the sustained rate"),
    "concurrent_requests": (1, 10_000, "API requests of the tenant in progress at once"),
    "rows_per_model": (0, 1_000_000_000, "rows of each tenant model"),
    "storage_mb": (
        0,
        10_000_000,
        "data the tenant holds (measured at most TENANCY_STORAGE_MAX_AGE_SECONDS ago), MiB",
    ),
}


@dataclass(frozen=True, slots=True)
class Limits:
    """The effective limits of a tenant: its plan's defaults with its overrides on top."""

    plan: str
    statement_timeout_ms: int
    requests_per_second: int
    burst: int
    concurrent_requests: int
    rows_per_model: int
    storage_mb: int

    def as_dict(self) -> dict:
        return asdict(self)


def plans() -> dict[str, dict[str, int]]:
    return settings.TENANCY_PLANS


def default_plan() -> str:
    return settings.TENANCY_DEFAULT_PLAN


def check_plan(name: str) -> str:
    if name not in plans():
        raise LimitInputError(f"Unknown plan {name!r}; plans: {', '.join(sorted(plans()))}.")
    return name


def parse_value(key: str, raw: object) -> int:
    """A validated integer for `key` (from the command line, a form or JSON)."""
    if key not in KEYS:
        raise LimitInputError(f"Unknown limit {key!r}; limits: {', '.join(KEYS)}.")
    low, high, _ = KEYS[key]
    try:
        value = int(str(raw).strip().replace("_", ""))
    except ValueError:
        raise LimitInputError(f"{key} must be an integer, not {raw!r}.") from None
    if not low <= value <= high:
        raise LimitInputError(f"{key} must be between {low} and {high}, not {value}.")
    return value


def effective(*, plan: str, overrides: dict[str, int]) -> Limits:
    values = {**plans()[plan], **{k: v for k, v in overrides.items() if k in KEYS}}
    return Limits(plan=plan, **{key: int(values[key]) for key in KEYS})
