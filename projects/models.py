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


class Invitation(models.Model):
    """An owner's offer of a role in a project to whoever has (or will have) an email address.

    Nobody becomes a member without consent: the invited user accepts it (then a ``Membership`` is
    made) or declines it. It names an email address, not a user, so that inviting says nothing about
    whether that address has an account. The row stays after it is answered, for the record."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        REVOKED = "revoked", "Revoked"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(help_text="Lower-cased, as users' addresses are.")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was accepted, declined or revoked."
    )

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # One open invitation per address and project: inviting again refreshes it.
            models.UniqueConstraint(
                fields=["project", "email"],
                condition=models.Q(status="pending"),
                name="invitation_pending_unique_per_project",
            )
        ]
        indexes = [models.Index(fields=["email", "status"], name="invitation_email_status_idx")]

    def __str__(self):
        return f"{self.email} to {self.project} ({self.role}, {self.status})"
