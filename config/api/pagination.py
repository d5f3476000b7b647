"""Lists (docs/api.md, "Lists and pagination"): an envelope named after the resource, all results
by default up to a server maximum, ``limit`` and ``offset`` to page. Order is the caller's
queryset's, which must be total (end with a unique column) so that pages never overlap or skip.

A page is read with one query (``limit + 1`` rows, to know whether there is more); when there is,
a ``Link: <...>; rel="next"`` header says where the next page starts.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response

from config.api.errors import ValidationFailed

# No list is this long; the bound keeps `offset + limit` inside every database's integer range.
MAX_OFFSET = 2**31 - 1


def _int_param(request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw) if raw.isascii() and raw.strip() == raw else None
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ValidationFailed.from_details(
            [
                {
                    "field": name,
                    "code": f"invalid_{name}",
                    "message": f"{name} must be an integer between {low} and {high}; got {raw!r}.",
                    "allowed": {"min": low, "max": high},
                }
            ]
        )
    return value


def paginated_response(request, queryset: QuerySet, serializer_class, envelope: str, **context) -> Response:
    maximum = settings.API_LIST_MAX_LIMIT
    limit = _int_param(request, "limit", maximum, 1, maximum)
    offset = _int_param(request, "offset", 0, 0, MAX_OFFSET)
    rows = list(queryset[offset : offset + limit + 1])
    headers = {}
    if len(rows) > limit:
        rows = rows[:limit]
        params = request.query_params.copy()
        params["limit"], params["offset"] = str(limit), str(offset + limit)
        headers["Link"] = f'<{request.path}?{params.urlencode()}>; rel="next"'
    data = serializer_class(rows, many=True, context={"request": request, **context}).data
    return Response({envelope: data}, headers=headers)


PAGINATION_PARAMETERS = [
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": settings.API_LIST_MAX_LIMIT},
        description="At most this many results (default and maximum: the server's maximum).",
    ),
    OpenApiParameter(
        "offset",
        {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
        description="Skip this many results.",
    ),
]
