"""Writes for projects and their members."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.actors import Actor
from accounts.models import User
from config.api.errors import ApiError, Conflict, NotFound, ValidationFailed
from projects.models import Invitation, Membership, Project, Role


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


# Apps above this one that keep rows under a project register here how to delete them when the
# project is deleted (the workspaces app, at start-up: WorkspacesConfig.ready). projects imports
# nothing of theirs: the imports point one way, workspaces -> projects (tests/test_import_graph.py).
ProjectCascade = Callable[..., None]
_delete_cascades: list[ProjectCascade] = []


def project_delete_cascade(cascade: ProjectCascade) -> None:
    """Register ``cascade(*, project, actor)``: it runs in ``project_delete``'s transaction, with the
    project's row locked, before the project is marked deleted; what it raises rolls it all back."""
    if cascade not in _delete_cascades:
        _delete_cascades.append(cascade)


def project_delete(*, project: Project, actor: Actor) -> None:
    """Deletes what other apps keep under the project (its live workspaces: each one's machine and
    volume are destroyed in the background, after commit), then the project itself: it is gone from
    the API at once and its name can be used again. The rows stay, for the records of its
    workspaces. Deleting twice is harmless."""
    with transaction.atomic():
        # Locked (on databases that can), so that two concurrent deletes do not both cascade.
        live = Project.objects.select_for_update().filter(pk=project.pk, deleted_at__isnull=True).first()
        if live is None:
            return
        for cascade in _delete_cascades:
            cascade(project=live, actor=actor)
        now = timezone.now()
        Project.objects.filter(pk=project.pk).update(deleted_at=now, updated_at=now)
        project.deleted_at = project.updated_at = now


# --- members ------------------------------------------------------------------------------------


class OwnerNotMember(ApiError):
    code = "owner_not_member"
    message = "The project's owner is not a member: their role cannot be changed and they cannot be removed."


class OwnerCannotLeave(ApiError):
    status_code = 409
    code = "owner_cannot_leave"
    message = "The owner cannot leave their project (it would have no owner); delete the project instead."


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
    """Takes a member out of the project: they no longer see it. The owner cannot be removed, nor
    leave (``owner_cannot_leave``): a project always has its owner. A member removes themselves
    (leaves) with this too; the view decides who may remove whom."""
    if user_id == project.owner_id:
        raise OwnerCannotLeave()
    membership = _membership(project, user_id)
    with transaction.atomic():
        deleted, _ = Membership.objects.filter(pk=membership.pk).delete()
    if not deleted:
        raise NotFound("Member not found.")


# --- invitations ----------------------------------------------------------------------------------


def _normalized_email(email: str) -> str:
    try:
        validate_email(email)
    except DjangoValidationError:
        raise ValidationFailed.from_details(
            [{"field": "email", "code": "invalid_email", "message": "Enter a valid email address."}]
        ) from None
    return email.lower()  # as accounts.models.UserManager stores users' addresses


def _expiry(now):
    return now + timedelta(days=settings.PROJECT_INVITATION_EXPIRY_DAYS)


def invitation_create(
    *, project: Project, email: str, role: str = Role.MEMBER, invited_by: User
) -> Invitation:
    """Invites whoever has ``email`` (now or later) to take ``role`` in the project.

    The same queries run, and the same answer comes back, whether or not the address has an
    account: inviting is no way to learn who has one. Someone already in the project is a 409
    (``already_member``): the owner sees the members anyway. Inviting an address that has a pending
    invitation refreshes that one (its role, inviter and expiry), keeping its id."""
    _check_role(role)
    email = _normalized_email(email)
    # One query, account or not: the owner or a member with this address.
    in_project = User.objects.filter(email=email).filter(
        Q(owned_projects=project) | Q(memberships__project=project)
    )
    if in_project.exists():
        raise Conflict(f"{email} is already in this project.", code="already_member")
    now = timezone.now()
    fields = {"role": role, "invited_by": invited_by, "created_at": now, "expires_at": _expiry(now)}
    try:
        with transaction.atomic():
            invitation, _ = Invitation.objects.update_or_create(
                project=project, email=email, status=Invitation.Status.PENDING, defaults=fields
            )
    except IntegrityError:
        # Two concurrent invitations of the same address: the unique constraint let one in; refresh it.
        with transaction.atomic():
            invitation = Invitation.objects.get(
                project=project, email=email, status=Invitation.Status.PENDING
            )
            Invitation.objects.filter(pk=invitation.pk).update(**fields)
            invitation.refresh_from_db()
    return invitation


def invitation_revoke(*, invitation: Invitation) -> None:
    """The owner takes back a pending invitation; it can no longer be accepted."""
    _answer(invitation, Invitation.Status.REVOKED)


def invitation_decline(*, invitation: Invitation) -> None:
    """The invited user says no; the owner may invite them again."""
    _answer(invitation, Invitation.Status.DECLINED)


def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    """The invited user joins the project with the invited role. The invitation is consumed and
    the membership made in one transaction: a concurrent revoke or second accept loses (404)."""
    with transaction.atomic():
        _answer(invitation, Invitation.Status.ACCEPTED)
        project = invitation.project
        if user.pk == project.owner_id or Membership.objects.filter(project=project, user=user).exists():
            raise Conflict(f"{user.email} is already in this project.", code="already_member")
        try:
            with transaction.atomic():
                return Membership.objects.create(project=project, user=user, role=invitation.role)
        except IntegrityError:
            # Joined meanwhile by another invitation: the unique constraint decides, as in _answer.
            raise Conflict(f"{user.email} is already in this project.", code="already_member") from None


def _answer(invitation: Invitation, status: str) -> None:
    # Conditional: an invitation is answered once, and an expired one not at all.
    answered = Invitation.objects.filter(
        pk=invitation.pk, status=Invitation.Status.PENDING, expires_at__gt=timezone.now()
    ).update(status=status, answered_at=timezone.now())
    if not answered:
        raise NotFound("Invitation not found.")
    invitation.status = status
