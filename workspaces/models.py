import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.actors import ActorKind
from workspaces.hardware import Hardware


class WorkspaceStatus(models.TextChoices):
    """Where a workspace is in its lifecycle (docs/api.md, "The workspace lifecycle")."""

    CREATING = "creating"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    ERROR = "error"
    STOP_FAILED = "stop_failed"


class AttemptOperation(models.TextChoices):
    """The background work an attempt is a run of (workspaces/attempts.py)."""

    PROVISION = "provision"
    STOP = "stop"
    DESTROY = "destroy"


class AttemptOutcome(models.TextChoices):
    """How an attempt ended, written once when it ends; ``running`` until then. The label is the
    end of the sentence the timeline shows ("Provision attempt 2 failed; it will be retried.")."""

    RUNNING = "running", "started"
    SUCCEEDED = "succeeded", "succeeded"
    RETRIED = "retried", "failed; it will be retried"
    FAILED = "failed", "failed"
    FAILED_UNEXPECTEDLY = "failed_unexpectedly", "failed unexpectedly"
    ABANDONED = "abandoned", "never finished"


def new_preview_token() -> str:
    return f"ptk_{secrets.token_urlsafe(32)}"


class LiveWorkspaceManager(models.Manager):
    """Workspaces that have not been deleted: the only ones the API knows."""

    def get_queryset(self):
        return super().get_queryset().filter(deleted_at__isnull=True)


class Workspace(models.Model):
    """A machine with a persistent volume, inside a project.

    Hardware is kept as real columns so that operators can filter on it. The provider fields
    (``driver``, ``machine_id``, ``volume_id``, ``private_ip``) are written only by provisioning.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey("projects.Project", on_delete=models.PROTECT, related_name="workspaces")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="workspaces"
    )
    status = models.CharField(
        max_length=16, choices=WorkspaceStatus.choices, default=WorkspaceStatus.CREATING
    )
    status_changed_at = models.DateTimeField(default=timezone.now)

    cpu_kind = models.CharField(max_length=32)
    cpus = models.PositiveSmallIntegerField()
    memory_mb = models.PositiveIntegerField()
    volume_size_gb = models.PositiveIntegerField()
    gpu_kind = models.CharField(max_length=64, null=True, blank=True)
    keep_active = models.BooleanField(default=False)

    driver = models.CharField(max_length=32, help_text="The machine driver that provisions this workspace.")
    machine_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    volume_id = models.CharField(max_length=64, null=True, blank=True)
    private_ip = models.GenericIPAddressField(null=True, blank=True)
    git_ref = models.CharField(max_length=255, null=True, blank=True)
    preview_token = models.CharField(max_length=64, unique=True, default=new_preview_token, editable=False)
    error_message = models.TextField(null=True, blank=True)

    provisioned_at = models.DateTimeField(
        null=True, blank=True, help_text="First reached running. Until then a failure destroys what was made."
    )
    last_activity_at = models.DateTimeField(
        default=timezone.now,
        help_text="Last heartbeat from the machine or action on the workspace (idle auto-stop).",
    )
    deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="Deleted through the API: gone from it, destroyed in the background."
    )
    destroyed_at = models.DateTimeField(null=True, blank=True, help_text="Its machine and volume are gone.")

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    # Runs started per operation, e.g. {"provision": 2}: counted under the row's lock when each
    # attempt opens (workspaces/attempts.py). It numbers the attempts and tells a first provisioning
    # run from a later one even after old timeline rows are pruned: a later run must look for what
    # an interrupted one made (MachineSpec.first_attempt).
    attempts_started = models.JSONField(default=dict, blank=True, editable=False)

    objects = models.Manager()
    live = LiveWorkspaceManager()

    class Meta:
        ordering = ["created_at", "id"]
        base_manager_name = "objects"
        default_manager_name = "objects"
        indexes = [
            models.Index(fields=["status", "status_changed_at"], name="workspace_status_idx"),
            models.Index(fields=["project", "created_at"], name="workspace_project_idx"),
            models.Index(fields=["created_by", "created_at"], name="workspace_owner_idx"),
            models.Index(fields=["deleted_at", "destroyed_at"], name="workspace_deleted_idx"),
        ]

    def __str__(self):
        return f"{self.id} ({self.status})"

    @property
    def hardware(self) -> Hardware:
        return Hardware(self.cpu_kind, self.cpus, self.memory_mb, self.volume_size_gb, self.gpu_kind)


class WorkspaceEvent(models.Model):
    """One entry of a workspace's timeline: a status change, a provisioning step, or an error.

    Our own table, not Celery's result backend, so operators can always read why a workspace is
    where it is and who or what moved it there.
    """

    class Kind(models.TextChoices):
        STATUS = "status", "Status change"
        ATTEMPT = "attempt", "Attempt (one run of a task)"
        INFO = "info", "Information"
        ERROR = "error", "Error"

    id = models.BigAutoField(primary_key=True)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    from_status = models.CharField(max_length=16, choices=WorkspaceStatus.choices, null=True, blank=True)
    to_status = models.CharField(max_length=16, choices=WorkspaceStatus.choices, null=True, blank=True)
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices, default=ActorKind.SYSTEM)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_token = models.ForeignKey(
        "accounts.ApiToken", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    message = models.TextField(blank=True, default="")
    task_id = models.CharField(
        max_length=64, blank=True, default="", help_text="The Celery task that acted, if any."
    )
    # Attempts only: one row per run of a task, opened when it starts and closed when it ends.
    operation = models.CharField(max_length=16, blank=True, default="", choices=AttemptOperation.choices)
    attempt_number = models.PositiveIntegerField(
        null=True, blank=True, help_text="1 for the first run of this operation on the workspace."
    )
    attempt_outcome = models.CharField(
        max_length=24, null=True, blank=True, choices=AttemptOutcome.choices, help_text="How the run ended."
    )
    request_id = models.CharField(
        max_length=128, blank=True, default="", help_text="The provider's request id."
    )
    duration_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Null while the attempt runs.")
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["workspace", "created_at"], name="event_workspace_idx"),
            models.Index(fields=["workspace", "kind", "operation", "created_at"], name="event_attempt_idx"),
        ]

    def __str__(self):
        if self.kind == self.Kind.STATUS:
            return f"{self.from_status or '∅'} → {self.to_status}"
        return self.message[:80]

    @staticmethod
    def attempt_message(operation: str, number: int | None, outcome: str) -> str:
        """The sentence an attempt shows, rendered from its columns (never read back)."""
        label = AttemptOutcome(outcome).label
        return f"{operation.capitalize()} attempt {f'{number} ' if number else ''}{label}."
