from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from config.api.openapi import OpenString
from config.api.serializers import StrictBooleanField, StrictCharField, StrictIntegerField, StrictSerializer
from workspaces import operations
from workspaces.models import ActorKind, AttemptOutcome, Workspace, WorkspaceEvent, WorkspaceStatus


class CpuKindField(OpenString, serializers.CharField):
    """The deployment's hardware catalogue (``WORKSPACE_HARDWARE_CATALOGUE``) names the CPU kinds,
    so the schema documents the default ones and promises no enum."""

    schema_name = "CpuKind"
    default_values = ["shared", "performance"]
    schema_description = (
        "CPU type; each kind has its own CPU counts and memory per CPU (see the hardware rules). "
        "The deployment's catalogue decides; `shared` and `performance` by default; the allowed "
        "values come back in a 400's `details[].allowed.choices`."
    )


class CpuKindInputField(CpuKindField, StrictCharField):
    """Any string parses; the hardware rules answer a wrong kind with ``invalid_cpu_kind``."""


@extend_schema_serializer(component_name="Hardware")  # request bodies: "HardwareRequest"
class HardwareInputSerializer(StrictSerializer):
    """Any subset of the hardware fields; the missing ones come from the caller's defaults."""

    cpu_kind = CpuKindInputField(required=False, help_text='CPU type: "shared" or "performance".')
    cpus = StrictIntegerField(required=False, help_text="Number of CPUs.")
    memory_mb = StrictIntegerField(required=False, help_text="Memory in megabytes.")
    volume_size_gb = StrictIntegerField(required=False, help_text="Volume size in gigabytes.")
    gpu_kind = StrictCharField(required=False, allow_null=True, help_text="GPU type, or null for none.")


@extend_schema_serializer(component_name="WorkspaceCreate")  # request bodies: "WorkspaceCreateRequest"
class WorkspaceCreateInputSerializer(StrictSerializer):
    hardware = HardwareInputSerializer(
        required=False,
        allow_null=True,
        help_text="Hardware configuration. Uses your default hardware settings if omitted.",
    )
    keep_active = StrictBooleanField(
        required=False, default=False, help_text="Whether the workspace should stay running when idle."
    )


class HardwareSerializer(serializers.Serializer):
    cpu_kind = CpuKindField()
    cpus = serializers.IntegerField()
    memory_mb = serializers.IntegerField()
    volume_size_gb = serializers.IntegerField()
    gpu_kind = serializers.CharField(allow_null=True)


class WorkspaceSerializer(serializers.ModelSerializer):
    project_id = serializers.UUIDField(read_only=True)
    hardware = serializers.SerializerMethodField()
    private_ip = serializers.CharField(
        allow_null=True, read_only=True, help_text="Private IP address (null until provisioned)."
    )

    class Meta:
        model = Workspace
        fields = [
            "id",
            "project_id",
            "status",
            "hardware",
            "keep_active",
            "machine_id",
            "private_ip",
            "git_ref",
            "preview_token",
            "error_message",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "machine_id": {"help_text": "Machine ID (null until provisioned)."},
            "git_ref": {
                "help_text": "The commit checked out from the project's repository (null until then)."
            },
            "preview_token": {"help_text": "Token for accessing workspace preview URLs."},
            "error_message": {"help_text": "Why the workspace failed, when it did."},
        }

    @extend_schema_field(HardwareSerializer)
    def get_hardware(self, workspace: Workspace) -> dict:
        return workspace.hardware.as_dict()


class WorkspacePlanSerializer(serializers.Serializer):
    """What a create would make (``dry_run=true``)."""

    hardware = HardwareSerializer()
    keep_active = serializers.BooleanField()


@extend_schema_serializer(component_name="WorkspaceUpdate")  # request bodies: "WorkspaceUpdateRequest"
class WorkspaceUpdateInputSerializer(StrictSerializer):
    keep_active = StrictBooleanField(
        required=False, help_text="Whether the workspace should stay running when idle."
    )


class StatusChangeSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=WorkspaceStatus.choices)


class EventActorSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=ActorKind.choices,
        help_text="Who acted: a user, one of their tokens, an operator, or the system.",
    )
    user_id = serializers.UUIDField(allow_null=True)
    email = serializers.EmailField(allow_null=True)
    token_prefix = serializers.CharField(
        allow_null=True, help_text="The token used, when the actor is a token."
    )


def _one_of(values: list[str]) -> str:
    """``a``, ``b`` or ``c``: the values an enum-like text field may take, for its help text."""
    quoted = [f"`{v}`" for v in values]
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}." if len(quoted) > 1 else f"{quoted[0]}."


class EventAttemptSerializer(serializers.Serializer):
    operation = serializers.CharField(help_text=_one_of(operations.labels()))
    number = serializers.IntegerField(
        min_value=1, help_text="1 for the first run of this operation on the workspace, 2 for the next."
    )
    outcome = serializers.ChoiceField(
        choices=AttemptOutcome.choices,
        help_text="`running` until the run ends; then `succeeded`, `retried` (a transient provider error; "
        "it runs again), `failed`, `failed_unexpectedly`, or `abandoned` (its worker died).",
    )
    task_id = serializers.CharField(help_text="The background task's id.")
    request_id = serializers.CharField(
        allow_null=True, help_text="The provider's request id, to quote to it."
    )
    duration_ms = serializers.IntegerField(allow_null=True, help_text="Null while the attempt is running.")
    error = serializers.CharField(allow_null=True, help_text="What went wrong, in the provider's words.")


class WorkspaceEventSerializer(serializers.ModelSerializer):
    type = serializers.CharField(
        source="kind",
        help_text="`status` (a status change), `attempt` (one run of a background task), `info`, or `error`.",
    )
    from_status = serializers.ChoiceField(choices=WorkspaceStatus.choices, allow_null=True)
    to_status = serializers.ChoiceField(choices=WorkspaceStatus.choices, allow_null=True)
    actor = serializers.SerializerMethodField()
    attempt = serializers.SerializerMethodField()

    class Meta:
        model = WorkspaceEvent
        fields = ["id", "type", "from_status", "to_status", "actor", "message", "attempt", "created_at"]
        read_only_fields = fields

    @extend_schema_field(EventAttemptSerializer(allow_null=True))
    def get_attempt(self, event: WorkspaceEvent) -> dict | None:
        if event.kind != WorkspaceEvent.Kind.ATTEMPT:
            return None
        return {
            "operation": event.operation,
            "number": event.attempt_number,
            "outcome": event.attempt_outcome or AttemptOutcome.RUNNING,
            "task_id": event.task_id,
            "request_id": event.request_id or None,
            "duration_ms": event.duration_ms,
            "error": event.error or None,
        }

    @extend_schema_field(EventActorSerializer)
    def get_actor(self, event: WorkspaceEvent) -> dict:
        # An operator's identity is theirs to keep: users see that an operator acted, not who.
        person = event.actor_user if event.actor_kind in (ActorKind.USER, ActorKind.TOKEN) else None
        return {
            "kind": event.actor_kind,
            "user_id": person.pk if person else None,
            "email": person.email if person else None,
            "token_prefix": event.actor_token.prefix
            if event.actor_token_id and event.actor_kind == ActorKind.TOKEN
            else None,
        }
