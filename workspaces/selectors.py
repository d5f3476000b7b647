"""Reads for workspaces, scoped to what the caller may see in one place."""

from django.db.models import QuerySet

from accounts.models import User
from config.errors import NotFound
from projects.selectors import parse_uuid, projects_visible_to
from workspaces.models import Workspace


def workspaces_visible_to(user: User) -> QuerySet[Workspace]:
    """Workspaces in the projects the user may see."""
    return Workspace.objects.filter(project__in=projects_visible_to(user).values("pk"))


def workspace_get_for(*, user: User, workspace_id: str) -> Workspace:
    workspace = workspaces_visible_to(user).filter(pk=parse_uuid(workspace_id, what="Workspace")).first()
    if workspace is None:
        raise NotFound("Workspace not found.")
    return workspace
