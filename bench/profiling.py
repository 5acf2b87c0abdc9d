"""Where the time goes when a target is missed: pyinstrument in-process, py-spy for gunicorn."""

from __future__ import annotations

import collections
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench.environment import PROJECT_ROOT, RESULTS_DIR


def profile_calls(operation: Callable[[], object], *, count: int, name: str) -> Path:
    """Run `operation` `count` times under pyinstrument; write the call tree as text."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0002)
    profiler.start()
    try:
        for _ in range(count):
            operation()
    finally:
        profiler.stop()
    path = RESULTS_DIR / f"profile-{name}.txt"
    path.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    return path


def worker_pids(master_pid: int) -> list[int]:
    """Children of a gunicorn master (its workers), read from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master_pid:
            children.append(int(stat.parent.name))
    return children


def start_sampling(pids: list[int], *, seconds: float, name: str) -> list[tuple]:
    """Start one py-spy per process (collapsed stacks); returns what `summarize` needs."""
    spy = Path(sys.executable).parent / "py-spy"
    runs = []
    for pid in pids:
        raw = RESULTS_DIR / f"profile-{name}-{pid}.txt"
        process = subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--format",
                "raw",
                "--output",
                str(raw),
                "--nonblocking",
                "--rate",
                "200",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        runs.append((process, raw))
    return runs


_LOCATION = re.compile(r"\s*\((?P<file>[^:()]+)(?::\d+)?\)$")


def summarize(runs: list[tuple], *, name: str, top: int = 30) -> Path:
    """Inclusive share of samples per function over all processes, the heaviest first."""
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    errors = []
    for process, raw in runs:
        _, stderr = process.communicate(timeout=120)
        if process.returncode != 0 or not raw.exists():
            errors.append(stderr.strip()[-300:])
            continue
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            samples = int(count)
            total += samples
            frames = {_short(frame) for frame in stack.split(";")}
            for frame in frames:
                inclusive[frame] += samples
    lines = [f"py-spy, {total} samples over {len(runs)} gunicorn workers; inclusive share:"]
    for frame, samples in inclusive.most_common(top):
        lines.append(f"{100 * samples / max(total, 1):5.1f}%  {frame}")
    lines += [f"py-spy error: {error}" for error in errors]
    path = RESULTS_DIR / f"profile-{name}.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _short(frame: str) -> str:
    match = _LOCATION.search(frame)
    if not match:
        return frame
    location = match["file"]
    if location.startswith(str(PROJECT_ROOT) + "/"):
        location = location[len(str(PROJECT_ROOT)) + 1 :]
    for marker in ("site-packages/", "lib/python3."):
        if marker in location:
            location = location.split(marker, 1)[1]
            break
    return f"{frame[: match.start()].strip()} ({location})"
