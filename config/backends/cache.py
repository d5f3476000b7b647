"""Django's Redis cache backend, with one Redis client per connection pool instead of one per call.

Django's ``RedisCacheClient.get_client()`` builds a new ``redis.Redis`` for every cache operation, and
redis-py's constructor fills a table of some 170 response callbacks each time: about 1 ms of CPU per
call. A rate-limited request makes four cache calls, so that was the largest single cost of a create
(see docs/benchmarks.md). A ``redis.Redis`` is safe to share between threads (its pool hands each
command its own connection), so one per pool is enough.

``config/settings/base.py`` puts this backend in place of Django's whenever ``CACHE_URL`` is Redis.
"""

from django.core.cache.backends import redis as django_redis


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(django_redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient
