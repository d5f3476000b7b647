"""Lists (API.md, Conventions): an envelope named after the resource, all results by default up to
a server maximum, ``limit`` and ``offset`` to page. Order is the caller's queryset's, which must be
total (end with a unique column) so that pages never overlap or skip.

A page is read with one query (``limit + 1`` rows, to know whether there is more); when there is,
a ``Link: <...>; rel="next"`` header says where the next page starts.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response

from config.errors import ValidationFailed


def _int_param(request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    allowed = {"min": low} if high is None else {"min": low, "max": high}
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValidationFailed.from_details(
            [
                {
                    "field": name,
                    "code": f"invalid_{name}",
                    "message": f"{name} must be an integer {bound}; got {raw!r}.",
                    "allowed": allowed,
                }
            ]
        )
    return value


def paginated_response(request, queryset: QuerySet, serializer_class, envelope: str, **context) -> Response:
    maximum = settings.API_LIST_MAX_LIMIT
    limit = _int_param(request, "limit", maximum, 1, maximum)
    offset = _int_param(request, "offset", 0, 0, None)
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
        "limit", int, description="At most this many results (default and maximum: the server's maximum)."
    ),
    OpenApiParameter("offset", int, description="Skip this many results."),
]
