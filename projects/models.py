import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from projects.validators import validate_branch, validate_repo_url


class Role(models.TextChoices):
    """What a person may do in a project. The owner may do everything and is not a membership."""

    MEMBER = "member", "Member (may create and manage workspaces)"
    VIEWER = "viewer", "Viewer (read only)"


OWNER = "owner"


class Project(models.Model):
    """A named group of workspaces, owned by one user and shared with members."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_projects"
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    # The validators are the API's (projects/validators.py), on the fields so that every ModelForm,
    # the admin's included, applies them too: no host directories, no internal addresses, no options.
    repo_url = models.CharField(
        max_length=2048,
        null=True,
        blank=True,
        validators=[validate_repo_url],
        help_text="Cloned into each new workspace.",
    )
    default_branch = models.CharField(max_length=255, null=True, blank=True, validators=[validate_branch])
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="Deleted through the API; kept for the records of its workspaces."
    )

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # Unique among live projects only: a deleted project's name can be used again.
            models.UniqueConstraint(
                fields=["owner", "name"],
                condition=models.Q(deleted_at__isnull=True),
                name="project_name_unique_per_owner",
            )
        ]

    def __str__(self):
        return self.name


class Membership(models.Model):
    """A user's role in a project they do not own."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_per_project")
        ]

    def __str__(self):
        return f"{self.user} in {self.project} ({self.role})"
