"""HTTP load generator of pairs 6, 9 and 10, run as its own process.

`python -m bench.loadgen SPEC.json` reads the targets, rounds and durations, runs every
target once per round in alternating order, and prints per-round figures as JSON. Each
measurement is bounded in time and only ever talks to the loopback URLs it was given.

- closed loop (pairs 6 and 10; locust as a library): a fixed number of concurrent users with
  no think time; figures are requests per second and latency.
- open loop (`"mode": "open"`, pair 9): each group of a side (one tenant's credential and
  path) sends requests at its own rate, Poisson arrivals, whatever the answers; the latency of
  each request counts from when it was due, so a server that falls behind is charged for the
  queue (no coordinated omission). Figures are every latency, the statuses and the timeouts.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402

import gevent  # noqa: E402
from geventhttpclient import HTTPClient  # noqa: E402
from locust import FastHttpUser, constant, task  # noqa: E402
from locust.env import Environment  # noqa: E402

from bench.measure import round_order  # noqa: E402


def _loopback(url: str) -> tuple[urllib.parse.SplitResult, str]:
    """The URL's parts and its path with the query; anything but loopback is refused."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing a non-loopback target: {url}")
    return parts, parts.path + (f"?{parts.query}" if parts.query else "")


def _user_class(url: str, headers: dict[str, str]) -> type[FastHttpUser]:
    parts, path = _loopback(url)

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


def _open_loop(groups: dict[str, dict], *, seconds: float, timeout: float, seed: int) -> dict:
    """Every group sends at its rate for `seconds`; then waits (at most `timeout`) for the
    answers still due. Per group: latencies (s), statuses, timeouts, connection errors."""
    rng = random.Random(seed)
    out: dict[str, dict] = {}
    clients = []
    senders = []
    requests = []
    started = time.monotonic() + 0.05

    def one(client, path: str, headers: dict, record: dict, due: float) -> None:
        try:
            with gevent.Timeout(timeout):
                response = client.get(path, headers=headers)
                response.read()
            status = str(response.status_code)
            record["statuses"][status] = record["statuses"].get(status, 0) + 1
            record["latencies"].append(time.monotonic() - due)
        except gevent.Timeout:
            record["timeouts"] += 1
        except OSError:
            record["errors"] += 1

    def sender(client, path: str, headers: dict, record: dict, arrivals: list[float]) -> None:
        for offset in arrivals:
            due = started + offset
            gevent.sleep(max(0.0, due - time.monotonic()))
            requests.append(gevent.spawn(one, client, path, headers, record, due))

    for name, group in groups.items():
        parts, path = _loopback(group["url"])
        client = HTTPClient(
            parts.hostname,
            parts.port,
            concurrency=group.get("connections", 16),
            connection_timeout=timeout,
            network_timeout=timeout,
        )
        clients.append(client)
        arrivals, at = [], rng.expovariate(group["rate"])
        while at < seconds:
            arrivals.append(at)
            at += rng.expovariate(group["rate"])
        record = {"latencies": [], "statuses": {}, "timeouts": 0, "errors": 0}
        record["sent"] = len(arrivals)
        out[name] = record
        senders.append(
            gevent.spawn(sender, client, path, group.get("headers", {}), record, arrivals)
        )
    gevent.joinall(senders)
    gevent.joinall(requests, timeout=timeout + 5)
    for client in clients:
        client.close()
    return out


def _open_main(spec: dict) -> None:
    """Sides (sets of groups) in alternating order, `rounds` times after the warm-up rounds."""
    if spec.get("cpu") is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {spec["cpu"]})  # away from the server's core
    names = list(spec["sides"])
    out: dict[str, list[dict]] = {name: [] for name in names}
    for index in range(spec.get("warmup_rounds", 1) + spec["rounds"]):
        for name in round_order(names, index):
            groups = {g: spec["groups"][g] for g in spec["sides"][name]}
            figures = _open_loop(
                groups, seconds=spec["seconds"], timeout=spec["timeout"], seed=index
            )
            if index >= spec.get("warmup_rounds", 1):
                out[name].append(figures)
            _drain(spec.get("drain_url"), timeout=spec["timeout"])
    json.dump(out, sys.stdout)


def _drain(url: str | None, *, timeout: float, quick: float = 0.05) -> None:
    """Wait until the server has worked off what the last side left queued (requests the
    client gave up on still run): until `url` answers within `quick` seconds twice in a row,
    for at most a minute. Otherwise one side's backlog would be charged to the next."""
    if url is None:
        gevent.sleep(1.0)
        return
    parts, path = _loopback(url)
    client = HTTPClient(parts.hostname, parts.port, network_timeout=timeout)
    fast, deadline = 0, time.monotonic() + 60
    try:
        while fast < 2 and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                client.get(path).read()
                fast = fast + 1 if time.monotonic() - started < quick else 0
            except (OSError, gevent.Timeout):
                fast = 0
            gevent.sleep(0.2)
    finally:
        client.close()


def main(spec_path: str) -> None:
    logging.getLogger("locust").setLevel(logging.ERROR)
    with open(spec_path) as handle:
        spec = json.load(handle)
    if spec.get("mode") == "open":
        _open_main(spec)
        return
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
