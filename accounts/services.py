"""Writes for accounts: users, their settings and their API tokens."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import tokens
from accounts.models import ApiToken, User, UserSettings
from workspaces.hardware import FIELDS as HARDWARE_FIELDS
from workspaces.hardware import Hardware, merge


@transaction.atomic
def user_create(*, email: str, password: str | None = None, display_name: str = "", **extra) -> User:
    """A user with their settings holding the deployment's default hardware."""
    user = User.objects.create_user(email=email, password=password, display_name=display_name, **extra)
    UserSettings.objects.create(user=user, **settings.WORKSPACE_DEFAULT_HARDWARE)
    return user


def user_settings_get(*, user: User) -> UserSettings:
    """The user's settings, made from the documented defaults if they have none yet (users made
    by ``createsuperuser`` or by hand in the admin)."""
    try:
        return user.settings
    except UserSettings.DoesNotExist:
        user_settings, _ = UserSettings.objects.get_or_create(
            user=user, defaults=settings.WORKSPACE_DEFAULT_HARDWARE
        )
        return user_settings


@transaction.atomic
@transaction.atomic
def user_settings_update(
    *, user: User, hardware: dict[str, Any] | None = None, partial: dict[str, Any] | None = None
) -> UserSettings:
    """Set the user's default hardware: all of it (``hardware``, PUT) or some fields laid over the
    current ones (``partial``, PATCH). The result is checked by exactly the rules of workspace
    creation, with fields named ``default_hardware.<field>``; on a problem ``ValidationFailed`` is
    raised and nothing is stored. The row is locked, so two concurrent PATCHes cannot lose a change.
    """
    # Imported here: workspaces.services imports this module (workspaces depend on accounts, not back).
    from workspaces.services import workspace_hardware_check

    user_settings_get(user=user)  # make sure the row exists before locking it
    user_settings = UserSettings.objects.select_for_update().get(user=user)
    current = Hardware(**{field: getattr(user_settings, field) for field in HARDWARE_FIELDS})
    merged = merge(current, partial) if hardware is None else Hardware(**{"gpu_kind": None, **hardware})
    workspace_hardware_check(hardware=merged, prefix="default_hardware")
    for field in HARDWARE_FIELDS:
        setattr(user_settings, field, getattr(merged, field))
    user_settings.save(update_fields=[*HARDWARE_FIELDS, "updated_at"])
    return user_settings


@dataclass(frozen=True)
class NewToken:
    """A token just made: the only moment its secret exists outside the caller's hands."""

    token: ApiToken
    secret: str


def api_token_create(*, user: User, name: str = "", expires_at: datetime | None = None) -> NewToken:
    secret, key = tokens.generate()
    token = ApiToken.objects.create(
        user=user, name=name, key=key, digest=tokens.digest(secret), expires_at=expires_at
    )
    return NewToken(token=token, secret=secret)


def api_token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def api_token_touch(*, token: ApiToken) -> None:
    """Record that the token was used, at most once a minute, so that reads do not all become writes."""
    now = timezone.now()
    resolution = settings.API_TOKEN_LAST_USED_RESOLUTION_SECONDS
    if token.last_used_at and (now - token.last_used_at).total_seconds() < resolution:
        return
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now
