"""The API's one error shape, produced in one place (docs/api.md, "Errors").

Every 4xx and 5xx body is ``{"error": "<sentence>", "code": "<stable code>"}``, with ``details``
for validation errors: ``[{"field", "code", "message", "allowed"?}]``. Domain errors raised by
services are ``ApiError`` subclasses; DRF's own exceptions are translated here.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with an HTTP status and a stable code that clients can switch on."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "bad_request"
    message = "Bad request."

    def __init__(
        self, message: str | None = None, *, code: str | None = None, details: list[dict] | None = None
    ):
        self.message = message or self.message
        self.code = code or self.code
        self.details = details
        super().__init__(self.message)


class ValidationFailed(ApiError):
    code = "validation_error"
    message = "The request is not valid."

    @classmethod
    def from_details(cls, details: list[dict[str, Any]]) -> ValidationFailed:
        first = details[0]
        summary = f"{first['field']}: {first['message']}" if first.get("field") else first["message"]
        if len(details) > 1:
            summary += f" (and {len(details) - 1} more problem{'s' if len(details) > 2 else ''})"
        return cls(summary, details=details)


class NotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"
    message = "Not found."


class Forbidden(ApiError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "permission_denied"
    message = "You do not have permission to do this."


class Conflict(ApiError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"
    message = "The request conflicts with the current state."


class RequestTooLarge(ApiError):
    """A body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``: Django refuses to read it (``RequestDataTooBig``)."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "request_too_large"

    @classmethod
    def for_limit(cls, limit: int | None = None) -> RequestTooLarge:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE if limit is None else limit
        message = f"The request body is larger than this server accepts: at most {limit} bytes."
        detail = {"field": None, "code": cls.code, "message": message, "allowed": {"max": limit}}
        return cls(message, details=[detail])


# DRF's exceptions, by class, to our code. Authentication subclasses carry their own code.
_DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "invalid_token",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ParseError: "invalid_json",
    exceptions.Throttled: "rate_limited",
}


def error_body(message: str, code: str, details: list[dict] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": message, "code": code}
    if details is not None:
        body["details"] = details
    return body


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every exception a view raises becomes our error shape."""
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge.for_limit()
    if isinstance(exc, ApiError):
        return Response(error_body(exc.message, exc.code, exc.details), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: Django's handler500 answers, in our shape

    headers = {}
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), exc.default_code)
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
        if code == "invalid_token":
            headers["WWW-Authenticate"] += ', error="invalid_token"'
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(math.ceil(exc.wait))

    if isinstance(exc, exceptions.ValidationError):
        failed = ValidationFailed.from_details(flatten_validation_errors(exc.detail))
        return Response(error_body(failed.message, failed.code, failed.details), status=400, headers=headers)
    message = _message(exc)
    if isinstance(exc, exceptions.UnsupportedMediaType):
        message = f"{message.rstrip('.')}. Send a JSON body with 'Content-Type: application/json'."
    return Response(error_body(message, code), status=exc.status_code, headers=headers)


def _message(exc: exceptions.APIException) -> str:
    detail = exc.detail
    if isinstance(detail, list | dict):
        return str(exc.default_detail)
    text = str(detail)
    return text if text.endswith((".", "?", "!")) else f"{text}."


def flatten_validation_errors(detail: Any, path: str = "") -> list[dict[str, Any]]:
    """DRF's nested ``ValidationError.detail`` as our flat ``details`` list, with dotted field paths."""
    out: list[dict[str, Any]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            field = path if key == "non_field_errors" else (f"{path}.{key}" if path else str(key))
            out.extend(flatten_validation_errors(value, field))
    elif isinstance(detail, list):
        for item in detail:
            out.extend(flatten_validation_errors(item, path))
    else:
        entry = {"field": path or None, "code": getattr(detail, "code", "invalid"), "message": str(detail)}
        out.append(entry)
    return out


def not_found_view(request, exception=None):
    """Django's handler404, for paths that match no route at all."""
    return JsonResponse(error_body("No such endpoint.", "not_found"), status=404)


def server_error_view(request):
    """Django's handler500: even a bug answers in our shape, without leaking the traceback."""
    return JsonResponse(error_body("Internal server error.", "server_error"), status=500)
