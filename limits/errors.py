"""The limits app's errors: bad input, and the refusals clients can act on."""

from __future__ import annotations


class LimitInputError(ValueError):
    """An unknown limit or plan, or a value out of range."""


class QuotaExceeded(Exception):
    """A write would go past one of the tenant's quotas; nothing was written."""

    def __init__(self, *, limit: str, value: int, detail: str) -> None:
        super().__init__(detail)
        self.limit = limit
        self.value = value
        self.detail = detail


class LimitsUnavailable(Exception):
    """The shared store of rate and concurrency state could not decide (unreachable, timed
    out): the request is refused, never admitted unchecked (fail closed)."""
