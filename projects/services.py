"""Writes for projects and their members."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from config.errors import ApiError, Conflict, NotFound, ValidationFailed
from projects.models import Membership, Project, Role

if TYPE_CHECKING:
    from workspaces.services import Actor


def project_create(
    *,
    owner: User,
    name: str,
    description: str = "",
    repo_url: str | None = None,
    default_branch: str | None = None,
) -> Project:
    try:
        with transaction.atomic():
            return Project.objects.create(
                owner=owner,
                name=name,
                description=description,
                repo_url=repo_url,
                default_branch=default_branch,
            )
    except IntegrityError:
        # The unique constraint, not a prior SELECT, decides: two concurrent creates cannot both win.
        if Project.objects.filter(owner=owner, name=name, deleted_at__isnull=True).exists():
            raise Conflict(f"You already have a project named {name!r}.", code="project_name_taken") from None
        raise


_UPDATABLE = ("name", "description", "repo_url", "default_branch")


def project_update(*, project: Project, **changes) -> Project:
    """Changes any of ``name``, ``description``, ``repo_url``, ``default_branch``; an omitted field
    stays as it is. A name another live project of the same owner has is a 409."""
    unknown = set(changes) - set(_UPDATABLE)
    if unknown:
        raise TypeError(f"project_update() cannot change {', '.join(sorted(unknown))}")
    if not changes:
        return project
    now = timezone.now()
    try:
        with transaction.atomic():
            # Conditional on the project being live: a concurrent delete wins, and this is then a 404.
            updated = Project.objects.filter(pk=project.pk, deleted_at__isnull=True).update(
                **changes, updated_at=now
            )
    except IntegrityError:
        # As in project_create: the unique constraint decides, so two concurrent renames cannot both win.
        name = changes.get("name")
        taken = Project.objects.filter(owner_id=project.owner_id, name=name, deleted_at__isnull=True)
        if name is not None and taken.exclude(pk=project.pk).exists():
            raise Conflict(f"You already have a project named {name!r}.", code="project_name_taken") from None
        raise
    if not updated:
        raise NotFound("Project not found.")
    for field, value in {**changes, "updated_at": now}.items():
        setattr(project, field, value)
    return project


def project_delete(*, project: Project, actor: Actor) -> None:
    """Deletes the project's live workspaces (each one's machine and volume are destroyed in the
    background, after commit), then the project itself: it is gone from the API at once and its name
    can be used again. The rows stay, for the records of its workspaces. Deleting twice is harmless."""
    # Imported here: workspaces depend on projects, not back; only this cascade reaches the other way.
    from workspaces.models import Workspace
    from workspaces.services import workspace_delete

    with transaction.atomic():
        # Locked (on databases that can), so that two concurrent deletes do not both cascade.
        live = Project.objects.select_for_update().filter(pk=project.pk, deleted_at__isnull=True).first()
        if live is None:
            return
        for workspace in Workspace.live.filter(project=live).order_by("created_at", "id"):
            workspace_delete(workspace=workspace, actor=actor)
        now = timezone.now()
        Project.objects.filter(pk=project.pk).update(deleted_at=now, updated_at=now)
        project.deleted_at = project.updated_at = now


# --- members ------------------------------------------------------------------------------------


class OwnerNotMember(ApiError):
    code = "owner_not_member"
    message = "The project's owner is not a member: their role cannot be changed and they cannot be removed."


def _check_role(role: str) -> None:
    if role not in Role.values:
        raise ValidationFailed.from_details(
            [
                {
                    "field": "role",
                    "code": "invalid_choice",
                    "message": f"{role!r} is not a role; choose one of {', '.join(Role.values)}.",
                    "allowed": {"choices": list(Role.values)},
                }
            ]
        )


def membership_add(*, project: Project, email: str, role: str = Role.MEMBER) -> Membership:
    """Gives the existing user with this email address (in any case) ``role`` in the project."""
    _check_role(role)
    # Emails are stored lower-cased (accounts.models.UserManager), so this equality uses the unique index.
    user = User.objects.filter(email=email.lower()).first()
    if user is None:
        raise ValidationFailed.from_details(
            [
                {
                    "field": "email",
                    "code": "unknown_user",
                    "message": f"No user has the email address {email!r}; they must have an account first.",
                }
            ]
        )
    if user.pk == project.owner_id:
        raise Conflict(f"{user.email} owns this project.", code="already_member")
    try:
        with transaction.atomic():
            return Membership.objects.create(project=project, user=user, role=role)
    except IntegrityError:
        # The unique constraint decides, so two concurrent adds of the same person cannot both win.
        if Membership.objects.filter(project=project, user=user).exists():
            raise Conflict(
                f"{user.email} is already a member of this project.", code="already_member"
            ) from None
        raise


def _membership(project: Project, user_id: uuid.UUID) -> Membership:
    if user_id == project.owner_id:
        raise OwnerNotMember()
    membership = Membership.objects.select_related("user").filter(project=project, user_id=user_id).first()
    if membership is None:
        raise NotFound("Member not found.")
    return membership


def membership_update(*, project: Project, user_id: uuid.UUID, role: str | None = None) -> Membership:
    """Changes a member's role (``None``: no change). The owner is not a member (``owner_not_member``)."""
    membership = _membership(project, user_id)
    if role is None:
        return membership
    _check_role(role)
    with transaction.atomic():
        if not Membership.objects.filter(pk=membership.pk).update(role=role):
            raise NotFound("Member not found.")  # removed in the meantime
    membership.role = role
    return membership


def membership_remove(*, project: Project, user_id: uuid.UUID) -> None:
    """Takes a member out of the project: they no longer see it. The owner cannot be removed."""
    membership = _membership(project, user_id)
    with transaction.atomic():
        deleted, _ = Membership.objects.filter(pk=membership.pk).delete()
    if not deleted:
        raise NotFound("Member not found.")
