"""The Redis broker transport (config/backends/redis_broker.py): what a web process publishes arrives, and
publishing does not build a Redis client per message."""

import pytest
import redis
from kombu import Connection, Exchange, Queue

import config.celery  # noqa: F401 (installs the transport under kombu's "redis" alias)
from config.backends.redis_broker import Transport


@pytest.fixture
def connection(redis_url):
    with Connection(redis_url) as connection:
        yield connection


def test_redis_urls_use_it(connection):
    assert isinstance(connection.transport, Transport)


def test_messages_published_arrive_in_order_through_one_client(connection, monkeypatch):
    queue = Queue("test-redis-broker", Exchange("test-redis-broker"), routing_key="test-redis-broker")
    made = []
    original = redis.Redis.__init__

    def counting_init(self, *args, **kwargs):
        made.append(self)
        original(self, *args, **kwargs)

    with connection.Producer() as producer:
        producer.publish({"n": 0}, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue])
        monkeypatch.setattr(redis.Redis, "__init__", counting_init)
        for n in range(1, 5):
            producer.publish({"n": n}, exchange=queue.exchange, routing_key=queue.routing_key)
    monkeypatch.undo()
    assert made == []  # kombu's own Redis channel built one client per message

    received = []
    with connection.SimpleQueue(queue) as simple:
        for _ in range(5):
            message = simple.get(timeout=5)
            received.append(message.payload["n"])
            message.ack()
    assert received == [0, 1, 2, 3, 4]
