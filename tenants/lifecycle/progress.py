"""How long operations report progress without knowing about terminals (the command decides)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

# progress(iterable, total=..., desc=...) -> the same items, perhaps drawing a bar meanwhile.
Progress = Callable[..., Iterable[Any]]


def no_progress(iterable: Iterable[Any], *, total: int | None = None, desc: str = ""):
    """The default: report nothing."""
    return iterable
