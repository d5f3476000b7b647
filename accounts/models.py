import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone

from accounts import tokens


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("A user needs an email address")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)  # None makes an unusable password: API-only users log in with tokens
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who calls the API (with tokens) or operates the service (in the admin).

    The email address is the login, stored lower-cased so that it is unique however it is typed.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    display_name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(default=False, help_text="Can log into the admin (the operator console).")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self):
        return self.email


class UserSettings(models.Model):
    """A user's default hardware for new workspaces (docs/api.md, "Profile and settings").

    Created with the user from the deployment's documented defaults; real columns so that operators
    can see and filter them.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="settings")
    cpu_kind = models.CharField(max_length=32)
    cpus = models.PositiveSmallIntegerField()
    memory_mb = models.PositiveIntegerField()
    volume_size_gb = models.PositiveIntegerField()
    gpu_kind = models.CharField(max_length=64, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "user settings"

    def __str__(self):
        return f"Settings of {self.user_id}"


class ApiTokenQuerySet(models.QuerySet):
    def usable(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """An API token: ``wsk_<key>_<secret>``, shown once, stored only as an HMAC-SHA256 digest.

    ``key`` is the public part used to find the row; the digest of the whole token is compared in
    constant time. A token works until it expires or is revoked.

    A token made through the API with another token (``created_by_token``) cannot outlive it: it
    expires no later than its creator, and revoking the creator revokes it (accounts/services.py).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    key = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by_token = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        editable=False,
        # A token cannot outlive its creator, not even as a row: deleting one deletes what it made.
        on_delete=models.CASCADE,
        related_name="created_tokens",
        help_text="The token whose API request made this one (it expires no later, and is revoked with "
        "it); empty for tokens made in the admin or by a command.",
    )

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.prefix}… ({self.name or 'unnamed'})"

    @property
    def prefix(self) -> str:
        """Enough of the token to recognise it, never enough to use it."""
        return f"{tokens.PREFIX}{self.key}"

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())


class UserQuota(models.Model):
    """An operator's override of a user's limits. A blank limit means the deployment's default
    (``WORKSPACE_QUOTA_DEFAULTS``)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota")
    max_workspaces = models.PositiveIntegerField(
        null=True, blank=True, help_text="Live (not deleted) workspaces."
    )
    max_vcpus = models.PositiveIntegerField(null=True, blank=True, help_text="CPUs over all live workspaces.")
    max_memory_mb = models.PositiveIntegerField(
        null=True, blank=True, help_text="Memory over all live workspaces."
    )
    max_volume_gb = models.PositiveIntegerField(
        null=True, blank=True, help_text="Volume size over all live workspaces."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"Quota of {self.user_id}"


class IdempotencyKey(models.Model):
    """A request made with an ``Idempotency-Key`` header, and the response it got, for 24 hours.

    The same key with the same request returns the stored response again; with another request it
    is a 422; while the first is still running, a 409. Keys belong to one user.
    """

    class State(models.TextChoices):
        IN_FLIGHT = "in_flight"
        DONE = "done"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.IN_FLIGHT)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    # JSON as text, not a JSONField: PostgreSQL's jsonb cannot hold "\u0000", which a 400 may echo
    # back from the request (an unknown field named "a\u0000b").
    response_body = models.TextField(null=True, blank=True, help_text="The response body, as JSON text.")
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user")
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self):
        return f"{self.key} ({self.state})"
