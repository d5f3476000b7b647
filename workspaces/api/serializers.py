from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.serializers import StrictBooleanField, StrictCharField, StrictIntegerField, StrictSerializer
from workspaces.models import Workspace


class HardwareInputSerializer(StrictSerializer):
    """Any subset of the hardware fields; the missing ones come from the caller's defaults."""

    cpu_kind = StrictCharField(required=False, help_text='CPU type: "shared" or "performance".')
    cpus = StrictIntegerField(required=False, help_text="Number of CPUs.")
    memory_mb = StrictIntegerField(required=False, help_text="Memory in megabytes.")
    volume_size_gb = StrictIntegerField(required=False, help_text="Volume size in gigabytes.")
    gpu_kind = StrictCharField(required=False, allow_null=True, help_text="GPU type, or null for none.")


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
    cpu_kind = serializers.CharField()
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
