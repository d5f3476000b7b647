"""Reads for accounts, scoped to the caller in one place."""

from django.db.models import QuerySet

from accounts.models import ApiToken, User
from config.api.errors import NotFound
from config.values import parse_uuid


def tokens_of(user: User) -> QuerySet[ApiToken]:
    """The user's tokens that are not revoked (expired ones are listed, so that their owner can see
    and remove them), newest first."""
    return ApiToken.objects.filter(user=user, revoked_at__isnull=True).order_by("-created_at", "-id")


def token_get_for(*, user: User, token_id: str, for_update: bool = False) -> ApiToken:
    """One of the user's live tokens; anything else (another user's, revoked, not a UUID) is a 404.
    ``for_update`` locks its row for the rest of the transaction."""
    pk = parse_uuid(token_id)
    if pk is None:
        raise NotFound("Token not found.")
    tokens = tokens_of(user).select_for_update() if for_update else tokens_of(user)
    token = tokens.filter(pk=pk).first()
    if token is None:
        raise NotFound("Token not found.")
    return token
