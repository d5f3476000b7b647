"""The Redis cache backend (config/backends/cache.py) that rate limits use when CACHE_URL is Redis."""

import pytest

from config.backends.cache import RedisCache


@pytest.fixture
def cache(redis_url):
    backend = RedisCache(redis_url, {"KEY_PREFIX": "test-cache"})
    yield backend
    backend.clear()


def test_a_redis_cache_url_selects_it():
    import subprocess
    import sys

    code = "from config.settings import test; print(test.CACHES['default']['BACKEND'])"
    result = subprocess.run(  # noqa: S603 (our own interpreter)
        [sys.executable, "-c", code],
        env={"CACHE_URL": "redis://127.0.0.1:6379/13", "PATH": ""},
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == "config.backends.cache.RedisCache", result.stderr


def test_it_caches_and_counts_like_django_s(cache):
    cache.set("history", [1.5, 2.5], timeout=30)
    assert cache.get("history") == [1.5, 2.5]
    assert cache.add("once", 1) is True and cache.add("once", 2) is False
    assert cache.incr("once") == 2
    cache.delete("history")
    assert cache.get("history") is None


def test_one_redis_client_serves_every_call(cache):
    cache.set("a", 1)
    first = cache._cache.get_client(write=True)
    cache.get("a")
    assert cache._cache.get_client() is first is cache._cache.get_client(write=True)
