"""The admission cache's rules, with an injected clock: it serves nothing unless its listener
holds LISTEN, entries end with their token or the cache's age limit, and it stays bounded."""

from __future__ import annotations

from accounts.admission_cache import AdmissionCache, token_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _cache(clock, **kwargs) -> AdmissionCache:
    cache = AdmissionCache(max_entries=kwargs.get("max_entries", 10), max_age=60, clock=clock)
    cache.listening = True
    return cache


def test_nothing_is_served_while_the_listener_is_not_listening():
    clock = Clock()
    cache = _cache(clock)
    cache.put("k", "principal", expires_at=clock.now + 30)
    cache.listening = False
    assert cache.get("k") is None
    cache.put("other", "principal", expires_at=clock.now + 30)
    cache.listening = True
    assert cache.get("other") is None  # never stored while deaf


def test_an_entry_ends_with_its_token_or_the_age_limit():
    clock = Clock()
    cache = _cache(clock)
    cache.put("short", "p", expires_at=clock.now + 5)
    cache.put("long", "p", expires_at=clock.now + 3600)
    clock.now += 6
    assert cache.get("short") is None and cache.get("long") == "p"
    clock.now += 60
    assert cache.get("long") is None


def test_a_revocation_drops_everything_and_the_size_is_bounded():
    clock = Clock()
    cache = _cache(clock, max_entries=3)
    for n in range(5):
        cache.put(str(n), n, expires_at=clock.now + 30)
    assert len(cache) == 3 and cache.get("0") is None and cache.get("4") == 4
    cache.revoke_all()
    assert len(cache) == 0 and cache.revocations == 1


def test_keys_are_digests_of_the_whole_token():
    assert token_key("a.b.c") != token_key("a.b.d")
    assert "a.b.c" not in token_key("a.b.c")
