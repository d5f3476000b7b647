"""Rate limits per user (docs/api.md, "Limits": 429 with ``Retry-After``), with a stricter scope
for creates.

Rates are read from ``API_RATE_LIMITS`` at each request (not frozen at import as DRF's are), and
counted in the Django cache: set ``CACHE_URL`` to Redis when several web processes serve the API,
so that they share one count.
"""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class UserRateThrottle(SimpleRateThrottle):
    """Every authenticated request counts against the user's general limit."""

    scope = "user"

    def get_rate(self):
        return settings.API_RATE_LIMITS.get(self.scope)

    def get_cache_key(self, request, view):
        if not getattr(request, "user", None):
            return None  # unauthenticated requests are refused with a 401 before this counts
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class CreateRateThrottle(UserRateThrottle):
    """Creating workspaces starts machines: a stricter limit, on top of the general one."""

    scope = "workspace_create"

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)
