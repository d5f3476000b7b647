"""Reads for workspaces, scoped to what the caller may see in one place."""

from django.db.models import QuerySet

from accounts.models import User
from config.api.errors import NotFound, ValidationFailed
from config.values import parse_uuid
from projects.models import Project
from projects.selectors import project_ids_visible_to, require_role, uuid_or_404
from workspaces.models import Workspace, WorkspaceEvent, WorkspaceStatus


def workspaces_visible_to(user: User) -> QuerySet[Workspace]:
    """Live (not deleted) workspaces in the projects the user may see, in a stable order."""
    return Workspace.live.filter(project__in=project_ids_visible_to(user)).order_by("created_at", "id")


def workspace_list(
    *, user: User, status: str | None = None, project_id: str | None = None
) -> QuerySet[Workspace]:
    """``GET /workspaces``: the caller's workspaces across projects, optionally filtered."""
    workspaces = workspaces_visible_to(user)
    problems = []
    if status is not None:
        if status not in WorkspaceStatus.values:
            problems.append(
                {
                    "field": "status",
                    "code": "invalid_status",
                    "message": f"status must be one of {', '.join(WorkspaceStatus.values)}; got {status!r}.",
                    "allowed": {"choices": WorkspaceStatus.values},
                }
            )
        workspaces = workspaces.filter(status=status)
    if project_id is not None:
        parsed = parse_uuid(project_id)
        if parsed is not None:
            workspaces = workspaces.filter(project_id=parsed)
        else:
            problems.append(
                {
                    "field": "project_id",
                    "code": "invalid_uuid",
                    "message": f"project_id must be a UUID; got {project_id!r}.",
                }
            )
    if problems:
        raise ValidationFailed.from_details(problems)
    return workspaces


def project_workspaces(*, project: Project) -> QuerySet[Workspace]:
    return Workspace.live.filter(project=project).order_by("created_at", "id")


def workspace_get_for(
    *, user: User, workspace_id: str, action: str = "view", for_update: bool = False
) -> Workspace:
    """The workspace, if the user may see it (else 404) and may do ``action`` to it (else 403).
    ``for_update``: read with the workspace's row lock (inside a transaction), so that what the
    caller checks (an ``If-Match``) still holds when it writes."""
    workspaces = workspaces_visible_to(user).select_related("project")
    if for_update:
        workspaces = workspaces.select_for_update(of=("self",))
    workspace = workspaces.filter(pk=uuid_or_404(workspace_id, what="Workspace")).first()
    if workspace is None:
        raise NotFound("Workspace not found.")
    if action != "view":
        require_role(workspace.project, user, action)
    return workspace


def workspace_events(*, workspace: Workspace) -> QuerySet[WorkspaceEvent]:
    return workspace.events.select_related("actor_user", "actor_token").order_by("created_at", "id")
