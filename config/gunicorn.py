"""Gunicorn's configuration: ``gunicorn -c config/gunicorn.py config.wsgi``.

Every value can be changed from the environment: ``PORT`` (8000), ``WEB_CONCURRENCY`` (worker
processes: 2 x cores + 1, at most 8 by default, since each holds its own database connection),
``GUNICORN_THREADS`` (1), ``GUNICORN_TIMEOUT`` (30 s), ``GUNICORN_MAX_REQUESTS`` (1000).

Requests gunicorn refuses before Django sees them (too long, malformed) are answered in the API's
error format, not gunicorn's HTML page (config/operations/gunicorn_errors.py).

No access log: ``config.operations.middleware.RequestIdMiddleware`` writes one structured line per request
(with its request id), in the same format as every other line. Gunicorn's own lines go to stderr.

Metrics: gunicorn runs several processes, so ``prometheus_client`` runs in multiprocess mode: each
process writes its samples to files in ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary folder
unless set, removed again when gunicorn exits; on Kubernetes, point it at an ``emptyDir``), the folder
is emptied when gunicorn starts, and a process that exits is marked dead so its gauges disappear
(config/operations/metrics.py).
"""

import atexit
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

from config.operations import gunicorn_errors
from config.operations.logs import logging_config

# Requests gunicorn refuses itself (414, 431, a malformed request line) answer in our error format.
gunicorn_errors.install()


def _remove_own_folder(folder: str, arbiter_pid: int) -> None:
    # At the arbiter's exit only: a worker (a fork, which runs atexit handlers too when it exits)
    # must not remove the folder its siblings still write to.
    if os.getpid() == arbiter_pid:
        shutil.rmtree(folder, ignore_errors=True)


if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Set here, in the arbiter, before any worker imports prometheus_client: the workers inherit it.
    # A folder we made is ours to remove when gunicorn exits (however it exits: a refused start
    # never reaches gunicorn's on_exit), so that no start leaves one behind in the temp folder.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prometheus-multiproc-")
    atexit.register(_remove_own_folder, os.environ["PROMETHEUS_MULTIPROC_DIR"], os.getpid())

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8)))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))  # a request longer than this is killed
graceful_timeout = 30  # on SIGTERM (a deploy), requests under way get this long to finish
keepalive = 5  # longer than nothing, shorter than a load balancer's idle timeout (usually 60 s)
# Recycle workers now and then (with jitter, so they do not all restart at once) against slow leaks.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "1000"))
max_requests_jitter = max_requests // 10
# Gunicorn's defaults, said here because they are part of the API: a longer request line is a 414
# (`uri_too_long`), a longer header or more headers a 431 (`headers_too_large`).
limit_request_line = 4094
limit_request_field_size = 8190
limit_request_fields = 100
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Gunicorn's own lines ("Booting worker", "Worker timeout") in the same format as Django's.
_production = os.environ.get("DJANGO_SETTINGS_MODULE", "").endswith(".production")
logconfig_dict = logging_config(
    fmt=os.environ.get("LOG_FORMAT") or ("json" if _production else "console"), level=loglevel
)
logconfig_dict["loggers"].update(
    {
        name: {"level": loglevel.upper(), "handlers": ["console"], "propagate": False}
        for name in ("gunicorn.error", "gunicorn.access")
    }
)
# Gunicorn's worker heartbeat files: in memory, not on a container's (possibly slow) disk.
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108


def on_starting(server):
    """Settings that refuse to load stop the server here, saying why once; then samples of an
    earlier run of the server would be added to this one's: start empty."""
    _refuse_bad_settings()
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()


def _refuse_bad_settings() -> None:
    """Production settings refuse a missing, weak or placeholder secret or a wildcard host, naming
    each (config/settings/production.py). Load them once in the arbiter, so that this is one
    message and a non-zero exit, rather than every worker failing to boot with a traceback."""
    from django.conf import settings

    from config.settings import SettingsRefused

    try:
        settings.SECRET_KEY  # noqa: B018 (reading a setting loads the settings module)
    except SettingsRefused as exc:
        raise SystemExit(str(exc)) from None


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
