"""Request plumbing shared by every API endpoint."""

import logging
import re
import time
import uuid

from django.http import JsonResponse

from config.api.errors import error_body, server_error_view
from config.operations.logs import bind_contextvars, clear_contextvars

logger = logging.getLogger(__name__)
request_logger = logging.getLogger("config.requests")

# An incoming X-Request-ID is kept only if it is short and plain (a load balancer's or a client's
# id); anything else (too long, spaces, quotes, newlines) could forge or break log lines, and is
# replaced by one of ours.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


class RequestIdMiddleware:
    """The first middleware: every request gets an id, held in a contextvar so that every log line
    of the request carries it (config/operations/logs.py), passed to the Celery tasks the request sends
    (config/celery.py), and returned as ``X-Request-ID`` on every response (API, 404, 500, admin,
    static files). It also writes one log line per request: method, path, status, duration."""

    HEADER = "X-Request-ID"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(self.HEADER, "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        clear_contextvars()
        bind_contextvars(request_id=request_id)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response[self.HEADER] = request_id
            request_logger.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                },
            )
            return response
        finally:
            clear_contextvars()


class ProbeMiddleware:
    """Answers ``/healthz``, ``/readyz`` (config/operations/health.py) and ``/metrics`` (config/operations/metrics.py)
    before the rest of the stack: before ``ALLOWED_HOSTS`` is checked (an orchestrator probes a pod
    by its IP address, which is no allowed host) and before the HTTPS redirect (probes and
    Prometheus speak plain HTTP inside the cluster). They are GETs that need no session, no CSRF
    and no user, so skipping those middlewares changes nothing for them."""

    def __init__(self, get_response):
        from config.operations import health, metrics

        self.get_response = get_response
        self.views = {
            "/healthz": health.liveness,
            "/readyz": health.readiness,
            "/metrics": metrics.metrics_view,
        }

    def __call__(self, request):
        path = request.path_info.rstrip("/")
        view = self.views.get(path)
        if view is None:
            return self.get_response(request)
        request.metrics_route = path.lstrip("/")
        if request.method not in ("GET", "HEAD"):
            response = JsonResponse(error_body("Only GET is allowed here.", "method_not_allowed"), status=405)
            response["Allow"] = "GET, HEAD"
            return response
        return view(request)


class StripTrailingSlashMiddleware:
    """Let every API path work with or without a trailing slash (docs/api.md, "Conventions").

    The API's URL patterns are written without one; this strips it before URL resolution, so that
    ``/projects/`` and ``/projects`` reach the same view with no redirect (a redirect would turn a
    client's POST into a GET). The admin and static files keep Django's own slash handling.
    """

    KEEP = ("/admin/", "/static/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        if len(path) > 1 and path.endswith("/") and not path.startswith(self.KEEP):
            request.path_info = path.rstrip("/") or "/"
        return self.get_response(request)


class JsonServerErrorMiddleware:
    """An unhandled exception on an API path answers in our error shape, even with DEBUG on (where
    Django would otherwise send its HTML debug page to a curl user or a generated client)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if request.path_info.startswith(StripTrailingSlashMiddleware.KEEP):
            return None
        logger.exception("Unhandled exception on %s %s", request.method, request.path_info)
        return server_error_view(request)
