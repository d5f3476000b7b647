"""Reads for projects, and the ONE place that decides which projects a user may see or change.

Every view that takes a project id goes through ``project_get_for``, so that another user's
project is a 404 everywhere (never a 403 that would tell it exists) and a viewer's write is a 403.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from accounts.models import User
from config.api.errors import Forbidden, NotFound
from config.values import parse_uuid
from projects.models import OWNER, Invitation, Membership, Project, Role

# What each role may do, and how to say what it may not.
ACTIONS = {
    "view": ({OWNER, Role.MEMBER, Role.VIEWER}, "see this project"),
    "create_workspace": ({OWNER, Role.MEMBER}, "create workspaces"),
    "manage_workspace": ({OWNER, Role.MEMBER}, "change workspaces"),
    "manage_project": ({OWNER}, "change or delete the project or its members"),
}


def projects_visible_to(user: User) -> QuerySet[Project]:
    """Live projects the user owns or is a member of, each annotated with ``member_role``."""
    memberships = Membership.objects.filter(project=OuterRef("pk"), user=user)
    return (
        Project.objects.filter(deleted_at__isnull=True)
        .annotate(
            member_role=Subquery(memberships.values("role")[:1]),
        )
        .filter(Q(owner=user) | Exists(memberships))
    )


def project_ids_visible_to(user: User) -> QuerySet:
    """The ids of ``projects_visible_to(user)``, as a subquery for lists of what those projects hold.

    The same rule, in a shape the database plans well: a UNION of two index lookups (owned, member
    of) is estimated at a few rows, so PostgreSQL walks the workspace index of each project. The
    OR-with-EXISTS shape is estimated at a fraction of all projects and made it scan every
    workspace of every user (docs/benchmarks.md, "Listing")."""
    owned = Project.objects.filter(owner=user, deleted_at__isnull=True).values("pk").order_by()
    shared = (
        Membership.objects.filter(user=user, project__deleted_at__isnull=True).values("project_id").order_by()
    )
    return owned.union(shared)


def uuid_or_404(value: str, *, what: str) -> uuid.UUID:
    """An id from a URL; anything that is not a UUID names nothing, so it is a 404."""
    parsed = parse_uuid(value)
    if parsed is None:
        raise NotFound(f"{what} not found.")
    return parsed


def project_role(project: Project, user: User) -> str:
    if project.owner_id == user.pk:
        return OWNER
    return getattr(project, "member_role", None) or project.memberships.get(user=user).role


def locked(queryset: QuerySet, for_update: bool) -> QuerySet:
    """``queryset``, locking the rows it reads (theirs only, not those of joined tables) when
    ``for_update``: for a write that must see and change the same version (If-Match)."""
    return queryset.select_for_update(of=("self",)) if for_update else queryset


def project_get_for(
    *, user: User, project_id: str, action: str = "view", for_update: bool = False
) -> Project:
    """The project, if the user may see it (else 404) and may do ``action`` in it (else 403)."""
    visible = locked(projects_visible_to(user), for_update)
    project = visible.filter(pk=uuid_or_404(project_id, what="Project")).first()
    if project is None:
        raise NotFound("Project not found.")
    require_role(project, user, action)
    return project


def require_role(project: Project, user: User, action: str) -> None:
    """403 unless the user's role in this (visible) project allows ``action``."""
    roles, description = ACTIONS[action]
    role = project_role(project, user)
    if role not in roles:
        raise Forbidden(f"Your role in this project is '{role}', which may not {description}.")


@dataclass(frozen=True)
class _Owner:
    """The owner as the members list shows them: not a membership, but first in the list."""

    user: User
    created_at: datetime
    role: str = OWNER


class _OwnerThenMembers:
    """The owner, then the memberships in (created_at, id) order, as one sliceable sequence, so that
    ``limit`` and ``offset`` page over both and a page is still one query for the memberships."""

    def __init__(self, project: Project):
        self.owner = _Owner(user=project.owner, created_at=project.created_at)
        self.memberships = project.memberships.select_related("user").order_by("created_at", "id")

    def __getitem__(self, page: slice) -> list:
        start, stop = page.start or 0, page.stop
        if start == 0:
            return [self.owner, *self.memberships[0 : stop - 1]]
        return list(self.memberships[start - 1 : stop - 1])


def project_members(project: Project) -> _OwnerThenMembers:
    """The project's people for ``GET /projects/{id}/members``: the owner first, then its members."""
    return _OwnerThenMembers(project)


def project_member_get(*, project: Project, user_id: str, for_update: bool = False) -> _Owner | Membership:
    """One of the project's people, as its members list shows them (the owner too); anyone else is a 404."""
    pk = uuid_or_404(user_id, what="Member")
    if pk == project.owner_id:
        return _Owner(user=project.owner, created_at=project.created_at)
    memberships = locked(Membership.objects.select_related("user"), for_update)
    membership = memberships.filter(project=project, user_id=pk).first()
    if membership is None:
        raise NotFound("Member not found.")
    return membership


# --- invitations ----------------------------------------------------------------------------------


def _open_invitations() -> QuerySet[Invitation]:
    """Invitations that can still be answered: pending, not expired, to a live project. Every
    invitation endpoint sees only these; any other id is a 404."""
    return (
        Invitation.objects.filter(
            status=Invitation.Status.PENDING,
            expires_at__gt=timezone.now(),
            project__deleted_at__isnull=True,
        )
        .select_related("project", "invited_by")
        .order_by("created_at", "id")
    )


def project_invitations(project: Project) -> QuerySet[Invitation]:
    """A project's open invitations, oldest first (for its owner)."""
    return _open_invitations().filter(project=project)


def project_invitation_get(*, project: Project, invitation_id: str, for_update: bool = False) -> Invitation:
    invitations = locked(project_invitations(project), for_update)
    invitation = invitations.filter(pk=uuid_or_404(invitation_id, what="Invitation")).first()
    if invitation is None:
        raise NotFound("Invitation not found.")
    return invitation


def invitations_for(user: User) -> QuerySet[Invitation]:
    """The open invitations addressed to the user's email address (stored lower-cased, as the
    user's is): made before they had an account too."""
    return _open_invitations().filter(email=user.email.lower())


def invitation_get_for(*, user: User, invitation_id: str) -> Invitation:
    """One of the user's own open invitations; anyone else's is a 404."""
    invitation = invitations_for(user).filter(pk=uuid_or_404(invitation_id, what="Invitation")).first()
    if invitation is None:
        raise NotFound("Invitation not found.")
    return invitation
