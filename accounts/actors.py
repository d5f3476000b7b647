"""Who or what acts: a user (in the browser or the admin), an API token, an operator, or the system.

It lives here, below the apps whose services record it (projects, workspaces), so that their
imports point one way: workspaces -> projects -> accounts. ``ActorKind`` is stored on a workspace's
timeline (``workspaces.WorkspaceEvent.actor_kind``); its values are part of the API.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models

from accounts.models import ApiToken, User


class ActorKind(models.TextChoices):
    USER = "user"
    TOKEN = "token"  # noqa: S105 (an actor kind, not a secret)
    OPERATOR = "operator"
    SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    """Who or what acts on a workspace or a project, as a timeline records it."""

    kind: str
    user: User | None = None
    token: ApiToken | None = None

    @classmethod
    def for_request(cls, request) -> Actor:
        token = request.auth if isinstance(request.auth, ApiToken) else None
        return cls(ActorKind.TOKEN if token else ActorKind.USER, user=request.user, token=token)


SYSTEM = Actor(ActorKind.SYSTEM)
