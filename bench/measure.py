"""Interleaved measurement of two sides, their statistics, targets and the Markdown table."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def interleave(
    sides: dict[str, Callable[[], float]], *, rounds: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Run every side once per round, alternating the order (A B, B A, A B, ...).

    Alternating cancels a slow drift of the machine (thermal, caches, autovacuum) that a fixed
    A-then-B order would charge to B. Warm-up rounds run first and are thrown away.
    """
    names = list(sides)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index in range(warmup + rounds):
        for name in round_order(names, index):
            gc.collect()
            value = sides[name]()
            if index >= warmup:
                samples[name].append(value)
    return samples


def alternate(
    sides: dict[str, Callable[[], object]], *, rounds: int, calls: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Two sides called in turn, one call each (A B B A A B ...), `calls` calls of each per
    round; a side's value for a round is its mean seconds per call.

    For two ways of doing one small operation. Each call runs beside a call of the other side,
    so both meet the same host from one millisecond to the next (a shared host changes speed
    within a second, which batches of a third of a second each do not cancel); and each side
    follows the other as often as itself, so neither finds the caches warmer. Per-round ratios
    stay within a few percent where batches spread by 20 % (docs/benchmarks.md, stop 27).
    """
    first, second = sides
    samples: dict[str, list[float]] = {first: [], second: []}
    for index in range(warmup + rounds):
        gc.collect()
        totals = {first: 0, second: 0}
        gc.disable()
        try:
            for call in range(calls):
                for name in (first, second) if call % 2 == 0 else (second, first):
                    start = time.perf_counter_ns()
                    sides[name]()
                    totals[name] += time.perf_counter_ns() - start
        finally:
            gc.enable()
        if index >= warmup:
            for name, total in totals.items():
                samples[name].append(total / calls / 1e9)
    return samples


def round_order(names: list[str], index: int) -> list[str]:
    """The order of the sides in round `index`: forwards on even rounds, backwards on odd."""
    return list(names) if index % 2 == 0 else list(reversed(names))


def per_op_seconds(operation: Callable[[], Any], *, count: int) -> float:
    """Seconds per call of `operation`, over `count` calls with the collector paused."""
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(count):
            operation()
        return (time.perf_counter() - start) / count
    finally:
        gc.enable()


def calibrate(operation: Callable[[], Any], *, seconds: float, floor: int = 20) -> int:
    """How many calls of `operation` take about `seconds` (so each batch is long enough)."""
    operation()
    probe = 10
    elapsed = per_op_seconds(operation, count=probe) * probe
    while elapsed < 0.05:
        probe *= 4
        elapsed = per_op_seconds(operation, count=probe) * probe
    return max(floor, int(probe * seconds / elapsed))


@dataclass(frozen=True)
class Target:
    """A bound on ours/baseline: at most `high`, at least `low`, or informative (neither)."""

    low: float | None = None
    high: float | None = None

    def holds(self, ratio: float) -> bool | None:
        if self.low is None and self.high is None:
            return None
        return (self.low is None or ratio >= self.low) and (self.high is None or ratio <= self.high)

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{self.low:.2f}x - {self.high:.2f}x"
        if self.high is not None:
            return f"<= {self.high:.2f}x"
        if self.low is not None:
            return f">= {self.low:.2f}x"
        return "info"


@dataclass
class Row:
    """One line of the table: ours against its baseline, measured in the same run."""

    pair: str
    title: str
    ours_label: str
    base_label: str
    unit: str  # "us", "ms", "s" (lower is better), "req/s" or "rows/s" (higher is better)
    ours: list[float]
    base: list[float]
    target: Target = field(default_factory=Target)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ours) / statistics.median(self.base)

    @property
    def round_ratios(self) -> list[float]:
        """ours/baseline of each interleaved round (paired), when both have every round."""
        if len(self.ours) != len(self.base):
            return []
        return [o / b for o, b in zip(self.ours, self.base, strict=True) if b]

    @property
    def verdict(self) -> str:
        holds = self.target.holds(self.ratio)
        return "info" if holds is None else ("PASS" if holds else "MISS")

    def as_json(self) -> dict[str, Any]:
        return {
            "pair": self.pair,
            "title": self.title,
            "ours": {"label": self.ours_label, "samples": self.ours, **summary(self.ours)},
            "baseline": {"label": self.base_label, "samples": self.base, **summary(self.base)},
            "unit": self.unit,
            "ratio_of_medians": self.ratio,
            "round_ratios": self.round_ratios,
            "target": self.target.describe(),
            "result": self.verdict,
            "note": self.note,
            **self.extra,
        }


@dataclass
class Check:
    """A yes/no requirement measured in the run (an index condition, zero IdP requests)."""

    pair: str
    title: str
    observed: str
    expected: str
    ok: bool
    note: str = ""

    @property
    def verdict(self) -> str:
        return "PASS" if self.ok else "MISS"

    def as_json(self) -> dict[str, Any]:
        return {
            "pair": self.pair,
            "title": self.title,
            "observed": self.observed,
            "expected": self.expected,
            "result": self.verdict,
            "note": self.note,
        }


@dataclass
class Failure:
    """A pair that could not be measured; the run goes on and exits non-zero at the end."""

    pair: str
    title: str
    error: str

    verdict = "ERROR"

    def as_json(self) -> dict[str, Any]:
        return {"pair": self.pair, "title": self.title, "result": "ERROR", "error": self.error}


def iqr(samples: list[float]) -> float:
    """The interquartile range: the spread of the middle half of the rounds."""
    if len(samples) < 2:
        return 0.0
    low, _, high = statistics.quantiles(samples, n=4, method="inclusive")
    return high - low


def summary(samples: list[float]) -> dict[str, float]:
    """Median, quartiles and extremes of a side's rounds (one round: all of them its value)."""
    q1, _, q3 = statistics.quantiles(samples, n=4) if len(samples) > 1 else samples * 3
    return {
        "median": statistics.median(samples),
        "q1": q1,
        "q3": q3,
        "min": min(samples),
        "max": max(samples),
    }


_SCALE = {"us": 1e6, "ms": 1e3, "s": 1.0, "req/s": 1.0, "rows/s": 1.0}


def _fmt(value: float, unit: str) -> str:
    scaled = value * _SCALE[unit]
    if scaled >= 100:
        return f"{scaled:,.0f}"
    if scaled >= 10:
        return f"{scaled:.1f}"
    return f"{scaled:.2f}"


def _cell(label: str, samples: list[float], unit: str) -> str:
    s = summary(samples)
    return (
        f"{label}: {_fmt(s['median'], unit)} {unit} ({_fmt(s['q1'], unit)}-{_fmt(s['q3'], unit)})"
    )


def _ratio_cell(row: Row) -> str:
    """The ratio of medians, and the IQR of the per-round ratios when the rounds are paired."""
    text = f"{row.ratio:.3f}x"
    spread = row.round_ratios
    if len(spread) > 1:
        q1, _, q3 = statistics.quantiles(spread, n=4)
        text += f" ({q1:.2f}-{q3:.2f})"
    return text


def markdown_table(results: list[Row | Check | Failure]) -> str:
    lines = [
        "| pair | what | ours: median (IQR) | baseline: median (IQR) | ratio (IQR of rounds) "
        "| target | result |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        if isinstance(r, Row):
            lines.append(
                f"| {r.pair} | {r.title} | {_cell(r.ours_label, r.ours, r.unit)} | "
                f"{_cell(r.base_label, r.base, r.unit)} | {_ratio_cell(r)} | "
                f"{r.target.describe()} | {r.verdict} |"
            )
        elif isinstance(r, Check):
            lines.append(
                f"| {r.pair} | {r.title} | {r.observed} | expected: {r.expected} | - | - | "
                f"{r.verdict} |"
            )
        else:
            lines.append(f"| {r.pair} | {r.title} | {r.error} | - | - | - | ERROR |")
    notes = [f"- {r.pair}: {r.note}" for r in results if getattr(r, "note", "")]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)
