"""The Celery application. Workers run with ``celery -A config worker``."""

import functools
import inspect
import logging
import os
import time
from pathlib import Path

from celery import Celery, signals
from kombu.transport import TRANSPORT_ALIASES

from config.operations.logs import bind_contextvars, clear_contextvars, current_request_id

logger = logging.getLogger(__name__)

# Production unless told otherwise: a worker started without configuration refuses to start, naming
# what is missing (config/settings/production.py). This module is imported with the `config` package
# (config/__init__.py), so this default applies to anything under config/ that is started without
# DJANGO_SETTINGS_MODULE; manage.py sets development first, `make run` passes it to config.devserver.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

# The embedded broker (filesystem://) with atomic message writes: see config/backends/filesystem_broker.py.
TRANSPORT_ALIASES["filesystem"] = "config.backends.filesystem_broker:Transport"
# Redis (redis://) without a new client per published message: see config/backends/redis_broker.py.
TRANSPORT_ALIASES["redis"] = "config.backends.redis_broker:Transport"

app = Celery("config")
# Every CELERY_* Django setting configures Celery (CELERY_BROKER_URL -> broker_url, ...).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _ensure_filesystem_broker_folders() -> None:
    # kombu's filesystem transport expects its folders to exist; create them on first use so that
    # a bare checkout needs no set-up step.
    options = app.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


@app.on_after_configure.connect
def _on_after_configure(sender, **kwargs):
    _ensure_filesystem_broker_folders()


# --- Logs: the same structured logging as the web (config/operations/logs.py), with each task's ids ---------------


@signals.setup_logging.connect
def _keep_django_logging(**kwargs):
    """With a receiver here Celery leaves logging alone: Django's LOGGING (config/operations/logs.py) applies to
    the worker too, so its lines have the web's format, level and secret scrubbing."""


@signals.before_task_publish.connect
def _pass_request_id(headers=None, **kwargs):
    """A task sent during a request (or by a task that was) carries the request's id."""
    request_id = current_request_id()
    if request_id and headers is not None:
        headers.setdefault("request_id", request_id)


@signals.task_prerun.connect
def _bind_task_context(task_id=None, task=None, args=None, kwargs=None, **extra):
    clear_contextvars()
    context = {"task_id": task_id, "task": task.name}
    request_id = getattr(task.request, "request_id", None)
    if request_id:
        context["request_id"] = request_id
    workspace_id = (kwargs or {}).get("workspace_id")
    if workspace_id is None and args and _first_parameter(task) == "workspace_id":
        workspace_id = args[0]
    if workspace_id is not None:
        context["workspace_id"] = str(workspace_id)
    bind_contextvars(**context)


@signals.task_postrun.connect
def _unbind_task_context(**kwargs):
    clear_contextvars()


@functools.cache
def _first_parameter(task) -> str | None:
    parameters = [p for p in inspect.signature(task.run).parameters if p != "self"]
    return parameters[0] if parameters else None


# --- Readiness: a worker heartbeat in the broker (config/backends/broker.py) --------------------------------------

_last_beat = 0.0


@signals.worker_ready.connect
def _first_heartbeat(sender=None, **kwargs):
    _record_heartbeat(getattr(sender, "hostname", "") or "")


@signals.heartbeat_sent.connect
def _heartbeat(sender=None, **kwargs):
    eventer = getattr(sender, "eventer", None)
    _record_heartbeat(getattr(eventer, "hostname", "") or "")


def _record_heartbeat(hostname: str) -> None:
    global _last_beat
    from config.backends import broker

    try:
        broker.record_worker_heartbeat(hostname)
        _last_beat = time.monotonic()
    except Exception as exc:
        # Said at most once a minute: the broker being down is reported by everything else too.
        if time.monotonic() - _last_beat > 60:
            logger.warning("Could not record the worker heartbeat in the broker: %s", exc)
            _last_beat = time.monotonic()
