"""Admitted principals and verified tokens, remembered per process until PostgreSQL says otherwise.

A bearer request that presents the same token again skips verification and admission: the
principal is taken from here. Entries expire with their token, after ADMISSION_CACHE_SECONDS at
the latest, and all of them are dropped whenever what decides admission changes. Triggers on
memberships, users, tenants and provider bindings (migration accounts 0006) send
`NOTIFY ameide_admission` when their transaction commits. Each process keeps one listening
connection in a daemon thread, so a removal, a suspension or a deactivation counts in every
process within milliseconds.

The cache fails safe. It serves nothing unless its listener is connected and listening (it
starts at the first lookup, after a gunicorn fork). If the listener's connection drops, the
cache empties and stays bypassed until the listener is back.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

CHANNEL = "ameide_admission"
_RECONNECT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class _Entry:
    value: Any
    expires_at: float


class AdmissionCache:
    """A bounded, time-limited map whose every entry is dropped on a revocation signal."""

    def __init__(self, *, max_entries: int, max_age: float, clock: Callable[[], float]) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._max_entries = max_entries
        self._max_age = max_age
        self._clock = clock
        self.listening = False  # set by the listener while its LISTEN holds
        self.revocations = 0

    def get(self, key: str) -> Any | None:
        if not self.listening:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires_at <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry.value

    def put(self, key: str, value: Any, *, expires_at: float) -> None:
        if not self.listening:
            return
        expires_at = min(expires_at, self._clock() + self._max_age)
        with self._lock:
            self._entries[key] = _Entry(value, expires_at)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def revoke_all(self) -> None:
        with self._lock:
            self._entries.clear()
            self.revocations += 1

    def __len__(self) -> int:
        return len(self._entries)


def token_key(token: str) -> str:
    """Entries are keyed by a digest of the whole token: nothing else can hit them."""
    return hashlib.sha256(token.encode()).hexdigest()


class _Listener(threading.Thread):
    """Holds `LISTEN ameide_admission` on a connection of its own and empties the cache on
    every notification, and whenever the connection is lost."""

    def __init__(self, cache: AdmissionCache, connect: Callable[[], psycopg.Connection]) -> None:
        super().__init__(name="ameide-admission-listener", daemon=True)
        self._cache = cache
        self._connect = connect
        self.ready = threading.Event()

    def run(self) -> None:
        while True:
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._cache.revoke_all()  # anything cached before LISTEN held is suspect
                    self._cache.listening = True
                    self.ready.set()
                    for _ in conn.notifies():
                        self._cache.revoke_all()
            except Exception:  # noqa: BLE001 (any failure: stop serving, then reconnect)
                logger.warning("admission cache listener lost its connection", exc_info=True)
            self._cache.listening = False
            self._cache.revoke_all()
            self.ready.set()
            time.sleep(_RECONNECT_SECONDS)


def _listener_connection() -> psycopg.Connection:
    """A direct connection as the runtime role (LISTEN needs a session of its own, so not
    through a transaction-mode pooler: ADMISSION_LISTEN_URL may name another address)."""
    url = getattr(settings, "ADMISSION_LISTEN_URL", "")
    if url:
        return psycopg.connect(url, autocommit=True)
    params = connections["default"].get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    return psycopg.connect(**params, autocommit=True)


_cache: AdmissionCache | None = None
_listener: _Listener | None = None
_start_lock = threading.Lock()


def cache() -> AdmissionCache | None:
    """This process's cache, its listener started on first use; None when switched off."""
    global _cache, _listener
    if settings.ADMISSION_CACHE_SECONDS <= 0:
        return None
    if _cache is not None:
        return _cache
    with _start_lock:
        if _cache is None:
            created = AdmissionCache(
                max_entries=settings.ADMISSION_CACHE_ENTRIES,
                max_age=settings.ADMISSION_CACHE_SECONDS,
                clock=time.time,
            )
            _listener = _Listener(created, _listener_connection)
            _listener.start()
            # Wait briefly for LISTEN, so that the first requests can already be cached.
            _listener.ready.wait(timeout=2)
            _cache = created
    return _cache


def reset() -> None:
    """Forget every entry (tests; a new process starts empty anyway)."""
    if _cache is not None:
        _cache.revoke_all()
