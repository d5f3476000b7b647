"""kombu's Redis transport, with one Redis client per channel instead of one per command.

kombu's Redis channel builds a new ``redis.Redis`` for each publish (``conn_or_acquire()`` without a
client calls ``_create_client()``), and redis-py's constructor fills a table of some 170 response
callbacks each time: the same cost config/backends/cache.py removes from the cache. A create publishes one
message, so every create paid it (docs/benchmarks.md). A ``redis.Redis`` is safe to share (its
connection pool hands each command its own connection), so the channel keeps one per pool; a new
pool (kombu makes one after a connection is closed and opened again) gets a new client.

Installed under kombu's ``redis`` alias by ``config/celery.py``, so the URL stays ``redis://``.
"""

from kombu.transport import redis


class Channel(redis.Channel):
    _shared_client = None

    def _create_client(self, asynchronous=False):
        if asynchronous:  # the channel's own BRPOP/publish client, already made once (kombu)
            return super()._create_client(asynchronous=True)
        client = self._shared_client
        if client is None or client.connection_pool is not self.pool:
            client = self._shared_client = super()._create_client()
        return client


class Transport(redis.Transport):
    Channel = Channel
