"""Benchmark only: the limits app without its statement timing (bench.settings_limits_off)."""

from limits.apps import LimitsConfig


class LimitsWithoutStatementTiming(LimitsConfig):
    """The limits app's models and admin, without the wrapper that times every statement
    (the database time of usage)."""

    def ready(self) -> None:
        return None
