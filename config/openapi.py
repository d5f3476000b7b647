"""What the OpenAPI schema needs beyond what drf-spectacular reads from views: the error shape,
the Bearer security scheme, and the standard error responses of each operation."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers


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
    415: "The body is not `application/json`.",
    422: "The Idempotency-Key was already used with a different request (`idempotency_key_reused`).",
    429: "Too many requests (`rate_limited`); retry after the `Retry-After` header's seconds.",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """The error responses of an operation, in our error shape. Every authenticated operation is
    rate limited, so one that can answer 401 can answer 429 too."""
    if 401 in statuses:
        statuses = (*statuses, 429)
    return {
        status: OpenApiResponse(ErrorSerializer, description=_DESCRIPTIONS[status])
        for status in sorted(set(statuses))
    }


def uuid_path_parameter(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(
        name,
        type={"type": "string", "format": "uuid"},
        location=OpenApiParameter.PATH,
        description=description,
    )


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
    "OpenApiExample",
    "error_responses",
    "inline_serializer",
    "uuid_path_parameter",
    "BearerTokenScheme",
]
