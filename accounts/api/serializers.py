from datetime import UTC

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError

from accounts.models import ApiToken, User
from config.api.serializers import StrictCharField, StrictIntegerField, StrictSerializer, json_type_name
from workspaces.api.serializers import CpuKindInputField, HardwareSerializer

# --- user settings ---------------------------------------------------------------------------------


@extend_schema_serializer(
    component_name="DefaultHardwareUpdate"
)  # request bodies: "DefaultHardwareUpdateRequest"
class DefaultHardwarePartialSerializer(StrictSerializer):
    """Any subset of the hardware fields; the missing ones keep their current value."""

    cpu_kind = CpuKindInputField(required=False, help_text='CPU type: "shared" or "performance".')
    cpus = StrictIntegerField(required=False, help_text="Number of CPUs.")
    memory_mb = StrictIntegerField(required=False, help_text="Memory in megabytes.")
    volume_size_gb = StrictIntegerField(required=False, help_text="Volume size in gigabytes.")
    gpu_kind = StrictCharField(required=False, allow_null=True, help_text="GPU type, or null for none.")


@extend_schema_serializer(component_name="DefaultHardware")  # request bodies: "DefaultHardwareRequest"
class DefaultHardwareInputSerializer(StrictSerializer):
    """A complete hardware choice: every field but `gpu_kind` (null when omitted) is required."""

    cpu_kind = CpuKindInputField(help_text='CPU type: "shared" or "performance".')
    cpus = StrictIntegerField(help_text="Number of CPUs.")
    memory_mb = StrictIntegerField(help_text="Memory in megabytes.")
    volume_size_gb = StrictIntegerField(help_text="Volume size in gigabytes.")
    gpu_kind = StrictCharField(
        required=False, allow_null=True, default=None, help_text="GPU type, or null for none (the default)."
    )


@extend_schema_serializer(component_name="UserSettingsUpdate")  # request bodies: "UserSettingsUpdateRequest"
class UserSettingsPartialInputSerializer(StrictSerializer):
    """PATCH: what to change; the merged result is checked as a whole."""

    default_hardware = DefaultHardwarePartialSerializer(
        required=False, help_text="Fields to change; the others keep their current value."
    )


@extend_schema_serializer(component_name="UserSettings")  # request bodies: "UserSettingsRequest"
class UserSettingsInputSerializer(StrictSerializer):
    """PUT: the whole settings object."""

    default_hardware = DefaultHardwareInputSerializer(
        help_text="The whole default hardware; `gpu_kind` may be omitted (null)."
    )


class UserSettingsSerializer(serializers.Serializer):
    default_hardware = HardwareSerializer(
        source="*", read_only=True, help_text="Used for new workspaces when a request omits hardware."
    )


# --- profile ---------------------------------------------------------------------------------------


class ProfileSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "display_name", "created_at", "updated_at"]
        read_only_fields = fields


# --- API tokens ------------------------------------------------------------------------------------


class StrictDateTimeField(serializers.DateTimeField):
    """An ISO 8601 string with a time zone: ``Z`` or an offset such as ``+02:00``.

    A time without a zone is rejected rather than guessed: read as UTC by us and as local time by
    the caller, a token would live hours longer (or shorter) than its owner meant.
    """

    def to_internal_value(self, value):
        if not isinstance(value, str):
            raise ValidationError(
                ErrorDetail(f"Must be an ISO 8601 string, not {json_type_name(value)}.", code="invalid_type")
            )
        try:
            # Python's fromisoformat takes any character between date and time, NUL included.
            parsed = parse_datetime(value.strip()) if value.isprintable() else None
        except ValueError:  # well formed, but no such moment (month 13, hour 25)
            parsed = None
        if parsed is None:
            raise ValidationError(
                ErrorDetail(
                    f"Must be an ISO 8601 date and time such as 2025-01-15T10:30:00Z; got {value!r}.",
                    code="invalid_datetime",
                )
            )
        if timezone.is_naive(parsed):
            raise ValidationError(
                ErrorDetail(
                    f"Must say its time zone: end it with Z (UTC) or an offset such as +02:00; got {value!r}.",
                    code="invalid_datetime",
                )
            )
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:59:59-01:00 is in the year 10000, which Python cannot hold
            raise ValidationError(
                ErrorDetail(
                    f"Must be a moment between the years 1 and 9999 in UTC; got {value!r}.",
                    code="invalid_datetime",
                )
            ) from None


@extend_schema_serializer(component_name="ApiTokenCreate")  # request bodies: "ApiTokenCreateRequest"
class ApiTokenCreateInputSerializer(StrictSerializer):
    """A new token: both fields are optional."""

    name = StrictCharField(
        required=False, allow_blank=True, default="", max_length=100, help_text="What the token is for."
    )
    expires_at = StrictDateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="When the token stops working: ISO 8601 with `Z` or an offset, in the future. "
        "Null or omitted: it works until revoked. Never later than the expiry of the token making the "
        "request: a later one (or null) becomes that.",
    )

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise ValidationError(
                ErrorDetail(
                    f"Must be in the future; got {value:%Y-%m-%dT%H:%M:%SZ}, which has passed.",
                    code="invalid_expiry",
                )
            )
        return value


class ApiTokenSerializer(serializers.ModelSerializer):
    prefix = serializers.CharField(
        read_only=True, help_text="The start of the token: enough to recognise it, not to use it."
    )

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "expires_at"]
        read_only_fields = fields
        extra_kwargs = {
            "last_used_at": {"help_text": "Last time a request used it (to the minute); null if never."},
            "expires_at": {
                "help_text": "When it stops working; null: never, until revoked. A token made with "
                "another token expires no later than that one."
            },
        }


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.SerializerMethodField(
        help_text="The token itself. Shown only in this response: store it now, it cannot be read again."
    )

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields

    def get_token(self, token: ApiToken) -> str:
        return self.context["secret"]
