"""Conditional requests: an ``ETag`` on every single resource, ``If-Match`` honoured on its writes.

A resource's entity tag is a digest of its JSON representation, so it changes whenever anything a
client can see changes, and two processes agree on it without storing anything. Clients that want
to avoid lost updates send the tag they read back in ``If-Match`` on ``PATCH``/``PUT``/``DELETE``:

* no ``If-Match``: the write goes ahead (the header is optional);
* ``If-Match: *`` or a list holding the current tag (weak ``W/`` prefixes are compared by value):
  the write goes ahead;
* anything else: 412 ``precondition_failed`` with the current tag in ``details``, and nothing is
  changed.

The check reads the resource in the same request that writes it; callers that need the check and
the write to be atomic hold the row's lock (``select_for_update``) while doing both.
"""

from __future__ import annotations

import hashlib
from typing import Any

from drf_spectacular.utils import OpenApiParameter
from rest_framework import status
from rest_framework.renderers import JSONRenderer

from config.api.errors import ApiError

_RENDERER = JSONRenderer()


# How the schema says it: the ETag of a 200 answer, the optional If-Match of a write (412 is in
# config/api/openapi.py's error_responses()).
ETAG_HEADER = OpenApiParameter(
    "ETag",
    {"type": "string"},
    location=OpenApiParameter.HEADER,
    response=[200],
    description="The resource's entity tag: send it back in `If-Match` to write only if it is unchanged.",
)
IF_MATCH_PARAMETER = OpenApiParameter(
    "If-Match",
    {"type": "string"},
    location=OpenApiParameter.HEADER,
    required=False,
    description="Write only if the resource still has this `ETag` (or `*`); otherwise 412 "
    "`precondition_failed`, and nothing changes. Without it, the write goes ahead.",
)


class PreconditionFailed(ApiError):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    code = "precondition_failed"
    message = "The resource changed since you read it (If-Match does not match its ETag)."


PRECONDITION_DETAIL = {"field": None, "code": PreconditionFailed.code, "message": PreconditionFailed.message}


def etag_for(representation: Any) -> str:
    """The strong entity tag of a JSON representation (a serializer's ``data``)."""
    digest = hashlib.sha256(_RENDERER.render(representation)).hexdigest()[:32]
    return f'"{digest}"'


def _tags(header: str) -> list[str]:
    tags = []
    for tag in header.split(","):
        tag = tag.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag:
            tags.append(tag)
    return tags


def check_if_match(request, representation: Any) -> None:
    """Raise ``PreconditionFailed`` unless the request's ``If-Match`` (if any) names the current
    representation's tag."""
    header = request.headers.get("If-Match")
    if header is None:
        return
    tags = _tags(header)
    if "*" in tags:
        return
    current = etag_for(representation)
    if current not in tags:
        raise PreconditionFailed(details=[{**PRECONDITION_DETAIL, "allowed": {"etag": current}}])


def with_etag(response):
    """Set ``response``'s ``ETag`` from its body (a single resource's 200 answer); returns it."""
    if response.status_code == status.HTTP_200_OK and isinstance(getattr(response, "data", None), dict):
        response["ETag"] = etag_for(response.data)
    return response
