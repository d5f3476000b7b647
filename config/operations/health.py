"""Health endpoints for load balancers and orchestrators: unauthenticated, plain JSON, cheap.

``GET /healthz`` (liveness): the process is up and serving. No database, no broker: a liveness
probe that failed with the database would have every web process restarted during a database
outage, which helps nothing. Always ``200 {"status": "ok"}``.

``GET /readyz`` (readiness): may this process take traffic? ``200`` when every required check
passes, else ``503``; the body names each check either way::

    {"status": "ok" | "unavailable",
     "checks": {
       "database":   {"ok": true},
       "migrations": {"ok": true, "pending": 0},
       "broker":     {"ok": true},
       "worker":     {"ok": true, "required": true, "last_seen_seconds_ago": 1.8, "hostname": "celery@w1"}}}

A failed check carries ``"error"`` (what went wrong, in a few words). Those details (errors, host
names, the worker's name and age, pending migrations) are shown only to a caller with
``Authorization: Bearer <METRICS_TOKEN>`` (as /metrics asks, compared in constant time): an error
can name an internal host and port. Anyone else, the probes included, gets the status code and each
check's ``ok`` alone: ``{"status": "unavailable", "checks": {"database": {"ok": true}, "broker":
{"ok": false}, ...}}``. The checks:

* ``database``: ``SELECT 1`` on the default connection.
* ``migrations``: no migration of the code is unapplied. Once all are applied the answer is kept
  for the life of the process (the code cannot gain migrations while it runs); until then it is
  looked at on every probe, so a web process started before ``migrate`` finished becomes ready
  as soon as it has.
* ``broker``: Redis ``PING``, or the filesystem broker's folder exists and is writable.
* ``worker``: a Celery worker consuming the default queue beat within
  ``READINESS_WORKER_MAX_AGE_SECONDS`` (60): workers write a heartbeat into the broker every 2 s
  (config/backends/broker.py), so this is one ``GET`` whatever the number of machines. With
  ``READINESS_REQUIRE_WORKER=false`` the check is still reported (``"required": false``) but does
  not make the answer 503: for web processes that must become ready before any worker exists, or
  operators who prefer the API to keep answering reads while the workers are down.

Both endpoints are plain Django views (not DRF: they stay out of the OpenAPI schema and need no
authentication), answered by ``ProbeMiddleware`` before the host check and the HTTPS redirect, so
that a probe by IP address over plain HTTP reaches them whatever ``DJANGO_ALLOWED_HOSTS`` and
``SECURE_SSL_REDIRECT`` say. django-health-check was considered; its Celery check is a broadcast
ping per probe and its JSON names checks differently, and these four checks are a few lines each.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse

from config.backends import broker
from config.operations.metrics import has_metrics_token

_migrations_applied = False


def _error(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


def check_database() -> dict:
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"ok": False, "error": _error(exc)}
    return {"ok": True}


def check_migrations() -> dict:
    global _migrations_applied
    if _migrations_applied:
        return {"ok": True, "pending": 0}
    try:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        return {"ok": False, "error": _error(exc)}
    if pending:
        return {"ok": False, "pending": len(pending), "error": "unapplied migrations: run manage.py migrate"}
    _migrations_applied = True
    return {"ok": True, "pending": 0}


def check_broker() -> dict:
    try:
        broker.ping()
    except Exception as exc:
        return {"ok": False, "error": _error(exc)}
    return {"ok": True}


def check_worker() -> dict:
    required = settings.READINESS_REQUIRE_WORKER
    max_age = settings.READINESS_WORKER_MAX_AGE_SECONDS
    try:
        beat = broker.last_worker_heartbeat()
    except Exception as exc:
        return {"ok": False, "required": required, "error": _error(exc)}
    if beat is None:
        return {"ok": False, "required": required, "error": "no worker has answered"}
    age = max(0.0, time.time() - beat["at"])
    result = {
        # The exact age: a beat 0.04 s old is older than a limit of 0 s, whatever it rounds to.
        "ok": age <= max_age,
        "required": required,
        "last_seen_seconds_ago": round(age, 1),
        "hostname": beat["hostname"],
    }
    if not result["ok"]:
        result["error"] = f"no worker has answered for more than {max_age:g} s"
    return result


def liveness(request):
    return _json({"status": "ok"}, 200)


def readiness(request):
    checks = {
        "database": check_database(),
        "migrations": check_migrations(),
        "broker": check_broker(),
        "worker": check_worker(),
    }
    ready = all(check["ok"] or not check.get("required", True) for check in checks.values())
    if not has_metrics_token(request):
        checks = {name: {"ok": check["ok"]} for name, check in checks.items()}
    return _json({"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503)


def _json(body: dict, status: int) -> JsonResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    return response
