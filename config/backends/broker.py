"""What health checks and metrics ask of the Celery broker: is it reachable, did a worker answer
recently, and how many messages wait in a queue.

Two brokers are supported, the two this project documents: Redis and kombu's filesystem broker
(the embedded default). With any other transport, reachability is checked through kombu, and the
worker heartbeat and queue depth are reported as unknown.

**Worker heartbeat.** Every Celery worker already beats every 2 seconds (``heartbeat_sent``); on
each beat it writes the time into the broker itself: a Redis key that expires, or a file beside the
filesystem broker's messages. The broker is the one store every web and worker machine shares by
definition, so a probe on any machine sees a worker on any other, and reading it costs one ``GET``
or one ``stat``. The key is per queue (``CELERY_TASK_DEFAULT_QUEUE``), so a test run's queue and a
development worker's do not vouch for each other. Times are wall-clock seconds; machines are
expected to keep their clocks in sync (NTP), as the window (60 s by default) is far wider than any
drift. A worker of the ``solo`` pool beats between tasks only, so a single solo worker busy with a
long task goes quiet; the prefork pool (production) beats throughout.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

HEARTBEAT_KEY = "workspaces:worker-heartbeat:{queue}"
_clients: dict[str, object] = {}
_lock = threading.Lock()


def kind() -> str:
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://", "redis+socket://")):
        return "redis"
    if url.startswith("filesystem://"):
        return "filesystem"
    return "other"


def default_queue() -> str:
    return getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", None) or "celery"


def _redis():
    """One client (a connection pool) per process and URL, with short timeouts: a probe must not hang."""
    import redis

    url = settings.CELERY_BROKER_URL
    with _lock:
        client = _clients.get(url)
        if client is None:
            client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
            _clients[url] = client
        return client


def _folder(key: str) -> Path:
    return Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS[key])


def ping() -> None:
    """Raises if the broker cannot be reached."""
    if kind() == "redis":
        _redis().ping()
    elif kind() == "filesystem":
        folder = _folder("data_folder_in")
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise OSError(f"the broker folder {folder} is missing or not writable")
    else:
        from config.celery import app

        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)


def record_worker_heartbeat(hostname: str, *, queue: str | None = None) -> None:
    """Called by workers (config/celery.py): "a worker consuming ``queue`` is alive now"."""
    queue = queue or default_queue()
    value = json.dumps({"at": time.time(), "hostname": hostname})
    if kind() == "redis":
        ttl = max(1, int(settings.READINESS_WORKER_MAX_AGE_SECONDS * 2))
        _redis().set(HEARTBEAT_KEY.format(queue=queue), value, ex=ttl)
    elif kind() == "filesystem":
        folder = _folder("control_folder")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"worker-heartbeat.{queue}.json"
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(value)
        os.replace(temporary, path)  # atomic: a reader never sees half a file


def last_worker_heartbeat(*, queue: str | None = None) -> dict | None:
    """``{"at": <unix time>, "hostname": ...}`` of the latest beat of any worker of ``queue``, or
    None if there is none (or this broker cannot tell)."""
    queue = queue or default_queue()
    raw: bytes | str | None = None
    if kind() == "redis":
        raw = _redis().get(HEARTBEAT_KEY.format(queue=queue))
    elif kind() == "filesystem":
        path = _folder("control_folder") / f"worker-heartbeat.{queue}.json"
        try:
            raw = path.read_text()
        except FileNotFoundError:
            return None
    if not raw:
        return None
    try:
        beat = json.loads(raw)
        return {"at": float(beat["at"]), "hostname": str(beat.get("hostname", ""))}
    except (ValueError, KeyError, TypeError):
        return None


def queue_length(queue: str) -> int | None:
    """Messages waiting in ``queue`` (not those a worker has taken), or None if unknown."""
    if kind() == "redis":
        # kombu keeps a queue as a Redis list, one list per priority step: "<queue>" for the
        # default priority, "<queue>\x06\x16<n>" for the others.
        client = _redis()
        names = [queue, *(f"{queue}\x06\x16{step}" for step in range(1, 10))]
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.llen(name)
            return sum(pipe.execute())
    if kind() == "filesystem":
        # kombu's filesystem broker: one file "<ms>_<uuid>.<queue>.msg" per message.
        suffix = f".{queue}.msg"
        try:
            return sum(1 for name in os.listdir(_folder("data_folder_in")) if name.endswith(suffix))
        except FileNotFoundError:
            return 0
    return None
