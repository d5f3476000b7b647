"""Prometheus metrics: ``GET /metrics`` on the web app, in Prometheus' text format.

**Access.** Off unless ``METRICS_TOKEN`` is set (a 404, as for any unknown path); then it needs
``Authorization: Bearer <METRICS_TOKEN>`` (401 otherwise). Like the health endpoints it is answered
before the host check and the HTTPS redirect (``ProbeMiddleware``), so Prometheus can scrape a pod
by IP over plain HTTP inside the cluster.

**Two sources, so that it is right with many web processes and workers on other machines:**

1. *Request metrics*, observed by each web process (``MetricsMiddleware``). Under gunicorn they live
   in ``prometheus_client``'s multiprocess mode: ``config/gunicorn.py`` sets
   ``PROMETHEUS_MULTIPROC_DIR`` so every worker process writes its own file, and any process's
   scrape sums them all. One machine's scrape covers that machine's processes: scrape every web
   pod (as Prometheus' Kubernetes service discovery does).

   * ``http_request_duration_seconds{method, route, status}``: histogram; its ``_count`` is the
     number of requests. ``route`` is the URL pattern (``workspaces/<str:id>``), ``<unmatched>``
     for unknown paths, ``<static>`` for static files, ``healthz``/``readyz``/``metrics`` for those.

2. *Domain metrics*, read at scrape time from the database, the cache and the broker, the stores
   that every machine shares, so any web process answers for the whole deployment (they are the
   same on every pod: aggregate them with ``max``, not ``sum``). Cost per scrape: one grouped
   count of workspaces, one aggregate over attempt rows, one cache ``get_many`` and one Redis
   pipeline (or one folder listing). The attempt aggregate scans the attempt rows, so its cost
   grows with their number; it is one indexless aggregate, fine for millions of rows at a
   15-60 s scrape interval.

   * ``workspaces{status}``: gauge, live (not deleted) workspaces by status, every status present.
   * ``workspaces_pending_destroy``: gauge, deleted workspaces whose machine is not yet destroyed.
   * ``workspace_attempt_duration_seconds{operation, outcome}``: histogram of finished task runs
     (workspaces/attempts.py, their outcome column): operation, one of the labels of workspaces/operations.py
     (``provision`` | ``stop`` | ``destroy``), outcome
     ``succeeded`` | ``retried`` (a transient provider error; it will run again) | ``failed``.
     Provisioning and stop durations are ``operation="provision"`` / ``"stop"``.
   * ``workspace_attempts_running{operation}``: gauge, runs started and not finished.
   * ``workspace_task_retries_total{operation}`` and ``workspace_task_failures_total{operation}``:
     counters, runs that ended in a retry, or in a failure (the workspace's error, or a bug).
   * ``reconciler_runs_total`` and ``reconciler_actions_total{action}``: counters, kept in the
     cache (shared Redis in production: ``CACHE_URL``), action ``timed_out`` | ``requeued`` |
     ``orphan_destroyed`` | ``vanished``. With a per-process cache (the embedded default) only the
     passes this process ran are counted.
   * ``celery_queue_length{queue}``: gauge, messages waiting in the default queue.
   * ``celery_worker_heartbeat_age_seconds{queue}``: gauge, seconds since a worker last beat
     (config/backends/broker.py); absent if none ever did.

Counters derived from rows go down only if rows are deleted; Prometheus' ``rate()`` treats that as
a reset. A part that cannot be read (the database is down) is left out of the answer and logged.
"""

from __future__ import annotations

import hmac
import logging
import os
import time

from django.conf import settings
from django.core.cache import cache
from django.db.models import Case, Count, Q, Sum, Value, When
from django.http import HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from config.api.errors import error_body, not_found_view
from config.backends import broker

logger = logging.getLogger(__name__)
disable_created_metrics()  # the *_created series only double the output; multiprocess mode has none

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
ATTEMPT_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route (the URL pattern) and status.",
    ["method", "route", "status"],
    buckets=REQUEST_BUCKETS,
)

RECONCILER_ACTIONS = ("timed_out", "requeued", "orphan_destroyed", "vanished")
_RECONCILER_KEY = "metrics:reconciler:{}"


# --- Request metrics ------------------------------------------------------------------------------


def route_of(request) -> str:
    """A bounded label for the endpoint a request reached."""
    label = getattr(request, "metrics_route", None)
    if label:
        return label
    match = getattr(request, "resolver_match", None)
    if match is None:
        static = "/" + settings.STATIC_URL.lstrip("/")
        return "<static>" if request.path.startswith(static) else "<unmatched>"
    if match.func is not_found_view or not match.route:
        return "<unmatched>"
    return match.route


class MetricsMiddleware:
    """Observes every request's duration (placed right after ``RequestIdMiddleware``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in METHODS else "other"
        REQUEST_DURATION.labels(method, route_of(request), str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response


# --- Domain metrics -------------------------------------------------------------------------------


def count_reconciler_pass(report) -> None:
    """Called by the reconciler after each pass: add its actions to the shared counters."""
    counts = {
        "timed_out": len(report.timed_out),
        "requeued": len(report.requeued),
        "orphan_destroyed": len(report.orphans_destroyed),
        "vanished": len(report.vanished),
    }
    try:
        _incr(_RECONCILER_KEY.format("runs"), 1)
        for action, n in counts.items():
            if n:
                _incr(_RECONCILER_KEY.format(action), n)
    except Exception:  # metrics must never break the reconciler
        logger.warning("Could not count the reconciler's actions", exc_info=True)


def _incr(key: str, n: int) -> None:
    try:
        cache.incr(key, n)
    except ValueError:  # no such key yet
        if not cache.add(key, n, timeout=None):
            cache.incr(key, n)


class DomainCollector:
    """The domain metrics, read at scrape time (see the module docstring)."""

    def collect(self):
        for part in (self._workspaces, self._attempts, self._reconciler, self._broker):
            try:
                yield from part()
            except Exception:
                logger.warning("metrics: could not collect %s", part.__name__.lstrip("_"), exc_info=True)

    def _workspaces(self):
        from workspaces.models import Workspace, WorkspaceStatus

        counts = dict(Workspace.live.values_list("status").annotate(n=Count("id")).order_by())
        gauge = GaugeMetricFamily("workspaces", "Live workspaces by status.", labels=["status"])
        for status in WorkspaceStatus.values:
            gauge.add_metric([status], counts.get(status, 0))
        yield gauge
        pending = Workspace.objects.filter(deleted_at__isnull=False, destroyed_at__isnull=True).count()
        yield GaugeMetricFamily(
            "workspaces_pending_destroy",
            "Deleted workspaces whose machine is not destroyed yet.",
            value=pending,
        )

    def _attempts(self):
        from workspaces import operations
        from workspaces.models import AttemptOutcome, WorkspaceEvent

        attempts = WorkspaceEvent.objects.filter(kind=WorkspaceEvent.Kind.ATTEMPT)
        running = dict(
            attempts.filter(duration_ms__isnull=True)
            .values_list("operation")
            .annotate(n=Count("id"))
            .order_by()
        )
        # The outcome column, folded into the three labels this metric has always had: a run that
        # failed unexpectedly or was abandoned by a dead worker counts as failed.
        outcome = Case(
            When(attempt_outcome=AttemptOutcome.SUCCEEDED, then=Value("succeeded")),
            When(attempt_outcome=AttemptOutcome.RETRIED, then=Value("retried")),
            default=Value("failed"),
        )
        buckets = {
            f"le_{i}": Count("id", filter=Q(duration_ms__lte=int(bound * 1000)))
            for i, bound in enumerate(ATTEMPT_BUCKETS)
        }
        rows = (
            attempts.filter(duration_ms__isnull=False)
            .annotate(outcome=outcome)
            .values("operation", "outcome")
            .annotate(n=Count("id"), total_ms=Sum("duration_ms"), **buckets)
            .order_by()
        )
        histogram = HistogramMetricFamily(
            "workspace_attempt_duration_seconds",
            "Duration of finished task runs on workspaces, by operation and outcome.",
            labels=["operation", "outcome"],
        )
        retries = CounterMetricFamily(
            "workspace_task_retries",
            "Task runs that ended in a retry (a transient provider error).",
            labels=["operation"],
        )
        failures = CounterMetricFamily(
            "workspace_task_failures",
            "Task runs that failed for good (or unexpectedly).",
            labels=["operation"],
        )
        per_operation: dict[str, dict[str, int]] = {}
        for row in rows:
            cumulative = [(str(bound), row[f"le_{i}"]) for i, bound in enumerate(ATTEMPT_BUCKETS)]
            histogram.add_metric(
                [row["operation"], row["outcome"]],
                buckets=[*cumulative, ("+Inf", row["n"])],
                sum_value=(row["total_ms"] or 0) / 1000,
            )
            per_operation.setdefault(row["operation"], {}).update({row["outcome"]: row["n"]})
        # Every operation's label (workspaces/operations.py) is present, at 0 if it never ran.
        for operation in sorted(set(per_operation) | set(operations.labels())):
            outcomes = per_operation.get(operation, {})
            retries.add_metric([operation], outcomes.get("retried", 0))
            failures.add_metric([operation], outcomes.get("failed", 0))
        yield histogram
        yield retries
        yield failures
        gauge = GaugeMetricFamily(
            "workspace_attempts_running", "Task runs started and not finished.", labels=["operation"]
        )
        for operation in sorted(set(running) | set(operations.labels())):
            gauge.add_metric([operation], running.get(operation, 0))
        yield gauge

    def _reconciler(self):
        keys = [_RECONCILER_KEY.format(name) for name in ("runs", *RECONCILER_ACTIONS)]
        values = cache.get_many(keys)
        yield CounterMetricFamily(
            "reconciler_runs", "Reconciler passes.", value=values.get(_RECONCILER_KEY.format("runs"), 0)
        )
        actions = CounterMetricFamily(
            "reconciler_actions", "What the reconciler did, by action.", labels=["action"]
        )
        for action in RECONCILER_ACTIONS:
            actions.add_metric([action], values.get(_RECONCILER_KEY.format(action), 0))
        yield actions

    def _broker(self):
        queue = broker.default_queue()
        length = broker.queue_length(queue)
        if length is not None:
            gauge = GaugeMetricFamily(
                "celery_queue_length", "Messages waiting in the queue.", labels=["queue"]
            )
            gauge.add_metric([queue], length)
            yield gauge
        beat = broker.last_worker_heartbeat(queue=queue)
        if beat is not None:
            gauge = GaugeMetricFamily(
                "celery_worker_heartbeat_age_seconds", "Seconds since a worker last beat.", labels=["queue"]
            )
            gauge.add_metric([queue], max(0.0, time.time() - beat["at"]))
            yield gauge


# --- The endpoint -----------------------------------------------------------------------------------


class _Sources:
    """Several collectors, read as one registry."""

    def __init__(self, *sources):
        self.sources = sources

    def collect(self):
        for source in self.sources:
            yield from source.collect()


def _request_metrics():
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def has_metrics_token(request) -> bool:
    """Whether ``request`` carries ``Authorization: Bearer <METRICS_TOKEN>``, compared in constant
    time; never while ``METRICS_TOKEN`` is unset. /metrics needs it; /readyz shows details with it."""
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), token.encode())
    )


def metrics_view(request):
    if not settings.METRICS_TOKEN:
        return not_found_view(request)
    if not has_metrics_token(request):
        response = JsonResponse(
            error_body("Metrics need 'Authorization: Bearer <METRICS_TOKEN>'.", "not_authenticated"),
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    output = generate_latest(_Sources(_request_metrics(), DomainCollector()))
    response = HttpResponse(output, content_type=CONTENT_TYPE_PLAIN_0_0_4)
    response["Cache-Control"] = "no-store"
    return response
