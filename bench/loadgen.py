"""HTTP load generator of pair 6 (locust as a library), run as its own process.

`python -m bench.loadgen SPEC.json` reads the targets, rounds and durations, runs every
target once per round in alternating order with a fixed number of concurrent users and no
think time, and prints per-round requests per second as JSON. Each measurement is bounded
in time and only ever talks to the loopback URLs it was given.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402

import gevent  # noqa: E402
from locust import FastHttpUser, constant, task  # noqa: E402
from locust.env import Environment  # noqa: E402

from bench.measure import round_order  # noqa: E402


def _user_class(url: str, headers: dict[str, str]) -> type[FastHttpUser]:
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing a non-loopback target: {url}")
    path = parts.path + (f"?{parts.query}" if parts.query else "")

    class BenchUser(FastHttpUser):
        host = f"{parts.scheme}://{parts.netloc}"
        wait_time = constant(0)

        @task
        def get(self) -> None:
            with self.client.get(path, headers=headers, catch_response=True) as response:
                if response.status_code != 200:
                    response.failure(f"HTTP {response.status_code}")

    return BenchUser


def _measure(user_class, *, users: int, warmup: float, seconds: float) -> dict:
    env = Environment(user_classes=[user_class])
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users * 100, wait=False)
    gevent.sleep(warmup)
    env.stats.reset_all()
    started = time.monotonic()
    gevent.sleep(seconds)
    elapsed = time.monotonic() - started
    total = env.stats.total
    result = {
        "rps": total.num_requests / elapsed,
        "requests": total.num_requests,
        "failures": total.num_failures,
        "median_ms": total.get_response_time_percentile(0.5),
        "p95_ms": total.get_response_time_percentile(0.95),
    }
    runner.quit()
    return result


def main(spec_path: str) -> None:
    logging.getLogger("locust").setLevel(logging.ERROR)
    with open(spec_path) as handle:
        spec = json.load(handle)
    classes = {
        name: _user_class(target["url"], target.get("headers", {}))
        for name, target in spec["targets"].items()
    }
    names = list(classes)
    out: dict[str, list[dict]] = {name: [] for name in names}
    for index in range(spec.get("warmup_rounds", 1) + spec["rounds"]):
        for name in round_order(names, index):
            figures = _measure(
                classes[name],
                users=spec["users"],
                warmup=spec["warmup_seconds"],
                seconds=spec["seconds"],
            )
            if index >= spec.get("warmup_rounds", 1):
                out[name].append(figures)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
