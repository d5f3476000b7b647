"""Writes for accounts: users, their settings and their API tokens."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed

from accounts import tokens
from accounts.models import ApiToken, User, UserSettings
from workspaces import hardware as hw


@transaction.atomic
def user_create(*, email: str, password: str | None = None, display_name: str = "", **extra) -> User:
    """A user with their settings holding the deployment's default hardware."""
    user = User.objects.create_user(email=email, password=password, display_name=display_name, **extra)
    UserSettings.objects.create(user=user, **settings.WORKSPACE_DEFAULT_HARDWARE)
    return user


def user_settings_get(*, user: User, for_update: bool = False) -> UserSettings:
    """The user's settings, made from the documented defaults if they have none yet (users made
    by ``createsuperuser`` or by hand in the admin). ``for_update`` reads them locked, for the rest
    of the caller's transaction."""
    if for_update:
        user_settings_get(user=user)  # make sure the row exists before locking it
        return UserSettings.objects.select_for_update().get(user=user)
    try:
        return user.settings
    except UserSettings.DoesNotExist:
        user_settings, _ = UserSettings.objects.get_or_create(
            user=user, defaults=settings.WORKSPACE_DEFAULT_HARDWARE
        )
        return user_settings


@transaction.atomic
def user_settings_update(
    *, user: User, hardware: dict[str, Any] | None = None, partial: dict[str, Any] | None = None
) -> UserSettings:
    """Set the user's default hardware: all of it (``hardware``, PUT) or some fields laid over the
    current ones (``partial``, PATCH). The result is checked by exactly the rules of workspace
    creation, with fields named ``default_hardware.<field>``; on a problem ``ValidationFailed`` is
    raised and nothing is stored. The row is locked, so two concurrent PATCHes cannot lose a change.

    The check is ``workspaces.hardware.check``, the leaf module that accounts may import from
    below: the driver's part of it is installed there by the workspaces app at start-up, so this
    module depends on nothing of workspaces but the catalogue's rules.
    """
    user_settings = user_settings_get(user=user, for_update=True)
    current = hw.Hardware(**{field: getattr(user_settings, field) for field in hw.FIELDS})
    merged = hw.merge(current, partial) if hardware is None else hw.Hardware(**{"gpu_kind": None, **hardware})
    hw.check(merged, prefix="default_hardware")
    for field in hw.FIELDS:
        setattr(user_settings, field, getattr(merged, field))
    user_settings.save(update_fields=[*hw.FIELDS, "updated_at"])
    return user_settings


@dataclass(frozen=True)
class NewToken:
    """A token just made: the only moment its secret exists outside the caller's hands."""

    token: ApiToken
    secret: str


@transaction.atomic
def api_token_create(
    *,
    user: User,
    name: str = "",
    expires_at: datetime | None = None,
    created_by_token: ApiToken | None = None,
) -> NewToken:
    """A new token for ``user``. Made with another token (``created_by_token``: an API request), it
    cannot outlive that token: its expiry is capped at the creator's (no expiry, or a later one,
    becomes the creator's), and revoking the creator revokes it. Tokens made in the admin or by a
    command have no creator and no cap.

    The creator's row is locked while the new one is made, so a revocation running at the same
    moment either sees the new token (and revokes it) or makes this creation fail."""
    if created_by_token is not None:
        creator = ApiToken.objects.select_for_update().get(pk=created_by_token.pk)
        if not creator.is_usable:  # revoked (or expired) since the request was authenticated
            # The request's own token: a 401 with WWW-Authenticate, as if it had been refused at the door.
            raise AuthenticationFailed("The token has been revoked.", code="invalid_token")
        if creator.expires_at is not None and (expires_at is None or expires_at > creator.expires_at):
            expires_at = creator.expires_at
    secret, key = tokens.generate()
    token = ApiToken.objects.create(
        user=user,
        name=name,
        key=key,
        digest=tokens.digest(secret),
        expires_at=expires_at,
        created_by_token=created_by_token,
    )
    return NewToken(token=token, secret=secret)


@transaction.atomic
def api_token_revoke(*, token: ApiToken) -> int:
    """Revoke the token and every token made with it, and with those, down the whole tree, in one
    transaction; how many tokens this revoked. Level by level, each level's rows updated (so locked)
    before its children are read: a token being made with one of them at the same moment is either
    seen here or refused by api_token_create."""
    now = timezone.now()
    revoked = 0
    level = [token.pk]
    while level:
        revoked += ApiToken.objects.filter(pk__in=level, revoked_at__isnull=True).update(revoked_at=now)
        level = list(ApiToken.objects.filter(created_by_token_id__in=level).values_list("pk", flat=True))
    return revoked


def api_token_touch(*, token: ApiToken) -> None:
    """Record that the token was used, at most once a minute, so that reads do not all become writes."""
    now = timezone.now()
    resolution = settings.API_TOKEN_LAST_USED_RESOLUTION_SECONDS
    if token.last_used_at and (now - token.last_used_at).total_seconds() < resolution:
        return
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now
