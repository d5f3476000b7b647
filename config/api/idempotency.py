"""``Idempotency-Key`` for POST endpoints (docs/api.md, "Idempotency").

The same key with the same request within 24 hours returns the first response again (same status
and body, plus ``Idempotent-Replayed: true``) and does nothing; the same key with another request
is a 422 ``idempotency_key_reused``; a second request while the first still runs is a 409
``idempotency_key_in_flight``. Keys belong to one user.

How it holds under concurrency and crashes: the key is claimed in its own committed transaction
(the unique constraint decides who wins), then the view's work and the stored response commit
together. If the process dies mid-request, that transaction rolls back, nothing was created, and
after ``IN_FLIGHT_TIMEOUT`` the key may be used again. 5xx and 429 answers are not stored, so a
retry can succeed.

Keys past ``RETENTION`` are deleted by a periodic task (``purge_expired_keys``, run by
``accounts.tasks.purge_idempotency_keys`` on the beat schedule): their stored bodies do not pile
up, and the key may be used again.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from functools import wraps

from django.apps import apps
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Model
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from config.api.errors import ApiError, ValidationFailed

HEADER = "Idempotency-Key"
RETENTION = timedelta(hours=24)
IN_FLIGHT_TIMEOUT = timedelta(minutes=5)
REPLAYED_HEADERS = ("Location", "ETag")  # a replay is the first answer, headers included

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    HEADER,
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    location=OpenApiParameter.HEADER,
    required=False,
    description="Any unique string up to 255 characters. Retrying with the same key and body within 24 hours "
    "returns the first response instead of acting twice.",
)


def _keys() -> type[Model]:
    """The keys' table, ``accounts.IdempotencyKey`` (a key belongs to a user), looked up by its label
    as settings name a model (``AUTH_USER_MODEL``): config sits below the apps and imports none of
    them at module level (tests/test_import_graph.py)."""
    return apps.get_model("accounts", "IdempotencyKey")


class KeyReused(ApiError):
    status_code = 422
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was used with a different request; use a new key for a new request."


class KeyInFlight(ApiError):
    status_code = 409
    code = "idempotency_key_in_flight"
    message = "A request with this Idempotency-Key is still being processed; retry in a moment."


def idempotent(handler):
    """Wrap an APIView POST handler. Requests without the header are untouched."""

    @wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return handler(view, request, *args, **kwargs)
        _check_key(key)
        fingerprint = _fingerprint(request)
        record = _claim(request.user, key, fingerprint)
        if record.state == _keys().State.DONE:
            return _replay(record)
        try:
            with transaction.atomic():
                try:
                    response = handler(view, request, *args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - rendered like DRF would, so a 4xx is stored too
                    response = view.handle_exception(exc)
                if response.status_code >= 500 or response.status_code == 429:
                    raise _Forget(response)
                _keys().objects.filter(pk=record.pk).update(
                    state=_keys().State.DONE,
                    response_status=response.status_code,
                    response_body=json.dumps(response.data, cls=JSONEncoder),
                    response_headers={h: response[h] for h in REPLAYED_HEADERS if response.has_header(h)},
                )
            return response
        except _Forget as forget:
            _keys().objects.filter(pk=record.pk).delete()
            return forget.response
        except BaseException:
            _keys().objects.filter(pk=record.pk).delete()
            raise

    return wrapper


class _Forget(Exception):
    """Roll the work back and release the key: the response is not one to replay."""

    def __init__(self, response):
        self.response = response


_KEY = re.compile(r"[!-~]{1,255}")  # visible ASCII: what survives every HTTP client and proxy


def _check_key(key: str) -> None:
    if not _KEY.fullmatch(key):
        raise ValidationFailed.from_details(
            [
                {
                    "field": HEADER,
                    "code": "invalid_idempotency_key",
                    "message": "Idempotency-Key must be 1 to 255 visible ASCII characters (no spaces).",
                }
            ]
        )


def _fingerprint(request) -> str:
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    material = f"{request.method}\n{request.path}\n{request.META.get('QUERY_STRING', '')}\n{body}"
    return hashlib.sha256(material.encode()).hexdigest()


def _claim(user, key: str, fingerprint: str) -> Model:
    """The key's record: a fresh claim (in flight, ours), or a finished one to replay."""
    now = timezone.now()
    for _ in range(3):
        try:
            with transaction.atomic():
                return _keys().objects.create(user=user, key=key, request_fingerprint=fingerprint)
        except IntegrityError:
            pass
        existing = _keys().objects.filter(user=user, key=key).first()
        if existing is None:
            continue  # released between our insert and our read: try again
        expired = existing.created_at < now - RETENTION
        abandoned = (
            existing.state == _keys().State.IN_FLIGHT and existing.created_at < now - IN_FLIGHT_TIMEOUT
        )
        if expired or abandoned:
            # Take it over only if nobody else did first.
            _keys().objects.filter(pk=existing.pk, created_at=existing.created_at).delete()
            continue
        if existing.request_fingerprint != fingerprint:
            raise KeyReused()
        if existing.state == _keys().State.IN_FLIGHT:
            raise KeyInFlight()
        return existing
    raise KeyInFlight()


def _replay(record: Model) -> Response:
    headers = {**record.response_headers, "Idempotent-Replayed": "true"}
    body = None if record.response_body is None else json.loads(record.response_body)
    return Response(body, status=record.response_status, headers=headers)


def purge_expired_keys(*, batch_size: int | None = None) -> int:
    """Delete the keys (and their stored responses) older than ``RETENTION``, in batches of
    ``batch_size`` rows (``IDEMPOTENCY_PURGE_BATCH_SIZE``), each its own short statement, so that a
    large backlog never holds one long lock or builds one huge query; how many were deleted.

    A key is past its use by then: ``_claim`` would take it over anyway. A request claiming the same
    key at the same moment only finds it gone and makes a fresh one."""
    batch_size = batch_size or settings.IDEMPOTENCY_PURGE_BATCH_SIZE
    cutoff = timezone.now() - RETENTION
    deleted = 0
    while True:
        batch = list(
            _keys()
            .objects.filter(created_at__lt=cutoff)
            .order_by("created_at")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not batch:
            return deleted
        deleted += _keys().objects.filter(pk__in=batch, created_at__lt=cutoff).delete()[0]
        if len(batch) < batch_size:
            return deleted
