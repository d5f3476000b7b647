"""What the OpenAPI schema needs beyond what drf-spectacular reads from views: the error shape,
the Bearer security scheme, the standard error responses of each operation, strict request objects
and named enums.

The committed ``openapi.yaml`` is what this code generates (``make check`` compares them); the SDK
and fuzzer tests in ``tests/contract`` hold the server to it.
"""

from collections.abc import Callable

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers

from config import conditional, gunicorn_errors
from config.errors import RequestTooLarge, error_body


class QuotaDetailSerializer(serializers.Serializer):
    limit = serializers.CharField(
        help_text="`max_workspaces`, `max_vcpus`, `max_memory_mb` or `max_volume_gb`."
    )
    current = serializers.IntegerField(help_text="In use now.")
    requested = serializers.IntegerField(help_text="What this request would add.")
    maximum = serializers.IntegerField(help_text="The limit.")


class ErrorDetailSerializer(serializers.Serializer):
    field = serializers.CharField(
        allow_null=True, help_text="Dotted path of the offending field, e.g. `hardware.memory_mb`."
    )
    code = serializers.CharField(
        help_text="Stable code, e.g. `memory_too_high`, `invalid_type`, `unknown_field`."
    )
    message = serializers.CharField()
    allowed = serializers.DictField(
        required=False,
        help_text="What would have been valid: `{min, max, step}` or `{choices: [...]}`.",
    )
    quota = QuotaDetailSerializer(
        required=False, help_text="Present on `quota_exceeded`: which limit, and by how much."
    )


@extend_schema_serializer(component_name="ApiError")  # "Error" is a reserved word in many SDK languages
class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="A sentence for people.")
    code = serializers.CharField(help_text="A stable code for programs.")
    details = ErrorDetailSerializer(many=True, required=False, help_text="Present on validation errors.")


_DESCRIPTIONS = {
    400: "Invalid request: the body is not valid JSON, has an unknown field, a wrong type, or breaks a rule.",
    401: "Missing or invalid token (`not_authenticated`, `invalid_token`); carries `WWW-Authenticate: Bearer`.",
    403: "Visible, but not allowed: a read-only project member, or a quota (`quota_exceeded`).",
    404: "Does not exist, is not visible to you, or the id is not a UUID.",
    409: "Conflicts with existing state, or a request with the same Idempotency-Key is still running.",
    412: "`If-Match` does not name the resource's current `ETag` (`precondition_failed`): nothing was changed.",
    413: "The body is over the server's limit (`request_too_large`); `details[0].allowed.max` is the limit in bytes.",
    415: "The body is not `application/json`.",
    422: "The Idempotency-Key was already used with a different request (`idempotency_key_reused`).",
    429: "Too many requests (`rate_limited`); retry after the `Retry-After` header's seconds.",
    414: "The request line (method, path and query) is over 4094 bytes (`uri_too_long`).",
    431: "A header is over 8190 bytes, or there are more than 100 headers (`headers_too_large`).",
}


def _validation_example(field: str, code: str, message: str, **extra) -> dict:
    return {
        "error": f"{field}: {message}",
        "code": "validation_error",
        "details": [{"field": field, "code": code, "message": message, **extra}],
    }


# Examples of 400s, in the words the server uses: the default one, and two for error_responses().
BAD_BODY = _validation_example(
    "nmae",
    "unknown_field",
    "Unknown field 'nmae'; known fields are: name, description, repo_url, default_branch.",
)
BAD_PAGE = _validation_example(
    "limit",
    "invalid_limit",
    "limit must be an integer between 1 and 1000; got '0'.",
    allowed={"min": 1, "max": 1000},
)
BAD_HARDWARE = _validation_example(
    "hardware.memory_mb",
    "memory_too_high",
    "memory_mb must be at most 2048 for 1 shared CPU; got 4096.",
    allowed={"min": 256, "max": 2048, "step": 256},
)
BAD_STATE = {
    "error": "Cannot start a workspace that is 'running'; start needs 'stopped' or 'error'.",
    "code": "invalid_state",
    "details": [
        {
            "field": "status",
            "code": "invalid_state",
            "message": "Cannot start a workspace that is 'running'; start needs 'stopped' or 'error'.",
            "allowed": {"choices": ["stopped", "error"]},
        }
    ],
}


def _request_too_large_example() -> dict:
    failed = RequestTooLarge.for_limit(2621440)  # Django's default DATA_UPLOAD_MAX_MEMORY_SIZE
    return error_body(failed.message, failed.code, failed.details)


_EXAMPLES = {
    401: {"error": "The token is malformed.", "code": "invalid_token"},
    403: {
        "error": "Your role in this project is 'viewer', which may not manage workspaces.",
        "code": "permission_denied",
    },
    404: {"error": "Project not found.", "code": "not_found"},
    409: {"error": "You already have a project named 'my-app'.", "code": "project_name_taken"},
    412: conditional.precondition_failed_example(),
    415: {
        "error": 'Unsupported media type "text/plain" in request. Send a JSON body with '
        "'Content-Type: application/json'.",
        "code": "unsupported_media_type",
    },
    422: {
        "error": "This Idempotency-Key was used with a different request; use a new key for a new request.",
        "code": "idempotency_key_reused",
    },
    429: {"error": "Request was throttled. Expected available in 12 seconds.", "code": "rate_limited"},
    413: _request_too_large_example(),
    414: gunicorn_errors.error_body(414, ""),
    431: gunicorn_errors.error_body(431, ""),
}


def error_responses(*statuses: int, bad_request: dict = BAD_BODY) -> dict[int, OpenApiResponse]:
    """The error responses of an operation, in our error shape, each with an example (``bad_request``
    for the 400). Every authenticated operation is rate limited, so one that can answer 401 can
    answer 429 too. Any request can be refused for its size before it reaches the API
    (config/gunicorn_errors.py): 414 and 431 are on every operation. An operation that reads a body
    (415: it takes one; 422: it honours an Idempotency-Key, which fingerprints the body) answers 413
    to one over ``DATA_UPLOAD_MAX_MEMORY_SIZE``."""
    statuses = (*statuses, 414, 431)
    if 415 in statuses or 422 in statuses:
        statuses = (*statuses, 413)
    if 401 in statuses:
        statuses = (*statuses, 429)
    examples = {**_EXAMPLES, 400: bad_request}
    return {
        status: OpenApiResponse(
            ErrorSerializer,
            description=_DESCRIPTIONS[status],
            examples=[OpenApiExample(f"Error{status}", value=examples[status], status_codes=[str(status)])],
        )
        for status in sorted(set(statuses))
    }


def uuid_path_parameter(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(
        name,
        type={"type": "string", "format": "uuid"},
        location=OpenApiParameter.PATH,
        description=description,
    )


class StrictObjectExtension(OpenApiSerializerExtension):
    """Request bodies parsed by a ``StrictSerializer`` reject unknown fields (``unknown_field``), so
    their schema says ``additionalProperties: false``: generated clients and fuzzers then know."""

    target_class = "config.serializers.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["additionalProperties"] = False
        return schema


class NamedEnum:
    """A string field that the schema shows as the named enum component ``enum_name``, whatever the
    field validates (the services check values and answer with their own codes and ``allowed``).

    Named here because drf-spectacular names enums after the field (``RoleEnum``), which collides
    when two fields share a name but not their values. ``enum_values`` may be a callable, read when
    the schema is generated (for values a deployment configures)."""

    enum_name: str
    enum_values: list[str] | Callable[[], list[str]]
    enum_description: str


class _NamedEnumExtension(OpenApiSerializerFieldExtension):
    target_class = NamedEnum
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        values = field.enum_values() if callable(field.enum_values) else field.enum_values
        schema = {"type": "string", "enum": list(values), "description": field.enum_description}
        component = ResolvedComponent(
            name=field.enum_name, type=ResolvedComponent.SCHEMA, object=field.enum_name, schema=schema
        )
        auto_schema.registry.register_on_missing(component)
        return component.ref


class SchemaHints:
    """A field whose schema carries extra JSON Schema keywords (``schema={"pattern": ...}``) for rules
    the services enforce with their own error codes: generated clients and fuzzers see the rule, and
    the answer to breaking it stays the service's."""

    def __init__(self, *args, schema: dict | None = None, **kwargs):
        self.schema_hints = schema or {}
        super().__init__(*args, **kwargs)


class _SchemaHintsExtension(OpenApiSerializerFieldExtension):
    target_class = SchemaHints
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        return {**schema, **self.target.schema_hints}


# A value the server trims to nothing is blank: a name must hold something besides whitespace. Written
# out, because `\S` differs between Python (which also trims \x1c-\x1f) and ECMA regular expressions.
NOT_BLANK = {"pattern": r"[^\s\x1c-\x1f]"}


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "BearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token: `Authorization: Bearer wsk_...`. Make one with "
            "`python manage.py create_api_token EMAIL`.",
        }


__all__ = [
    "NOT_BLANK",
    "NamedEnum",
    "SchemaHints",
    "OpenApiExample",
    "error_responses",
    "inline_serializer",
    "uuid_path_parameter",
    "BearerTokenScheme",
]
