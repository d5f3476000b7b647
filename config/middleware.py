"""Request plumbing shared by every API endpoint."""

import logging

from config.errors import server_error_view

logger = logging.getLogger(__name__)


class StripTrailingSlashMiddleware:
    """Let every API path work with or without a trailing slash (API.md, Conventions).

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
