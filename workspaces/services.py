"""Writes for workspaces: creation, provisioning, and the status transitions they make.

Every transition is a conditional UPDATE (``WHERE status = <what we saw>``) in the same
transaction as its event, so two runs of the same task cannot both act, and the timeline always
says who or what moved a workspace.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken, User
from accounts.services import user_settings_get
from config.errors import ValidationFailed
from projects.models import Project
from workspaces import hardware as hw
from workspaces.drivers import DriverError, MachineSpec, get_driver
from workspaces.models import ActorKind, Workspace, WorkspaceEvent, WorkspaceStatus

logger = logging.getLogger(__name__)
S = WorkspaceStatus


@dataclass(frozen=True)
class Actor:
    """Who or what acts on a workspace, as the timeline records it."""

    kind: str
    user: User | None = None
    token: ApiToken | None = None

    @classmethod
    def for_request(cls, request) -> Actor:
        token = request.auth if isinstance(request.auth, ApiToken) else None
        return cls(ActorKind.TOKEN if token else ActorKind.USER, user=request.user, token=token)


SYSTEM = Actor(ActorKind.SYSTEM)


# --- creation -------------------------------------------------------------------------------------


def workspace_hardware_resolve(*, user: User, requested: dict[str, Any] | None) -> hw.Hardware:
    """The caller's defaults with ``requested`` laid over them, checked against every rule of the
    catalogue and what the driver can offer. Raises ``ValidationFailed`` with one detail per rule."""
    defaults = user_settings_get(user=user)
    merged = hw.merge(hw.Hardware(**{f: getattr(defaults, f) for f in hw.FIELDS}), requested)
    problems = hw.validate(merged, settings.WORKSPACE_HARDWARE_CATALOGUE)
    if not problems:
        problems = get_driver().check_hardware(merged)
    if problems:
        raise ValidationFailed.from_details([p.as_dict() for p in problems])
    return merged


def workspace_create(
    *, project: Project, user: User, hardware: dict[str, Any] | None, keep_active: bool, actor: Actor
) -> Workspace:
    """A new workspace in ``creating``; provisioning is queued once the row is committed."""
    # Imported here: tasks import services, and a task module is a thin adapter over this one.
    from workspaces.tasks import provision_workspace

    resolved = workspace_hardware_resolve(user=user, requested=hardware)
    with transaction.atomic():
        workspace = Workspace.objects.create(
            project=project,
            created_by=user,
            keep_active=keep_active,
            driver=get_driver().name,
            **resolved.as_dict(),
        )
        _record(
            workspace,
            actor,
            kind=WorkspaceEvent.Kind.STATUS,
            to_status=S.CREATING,
            message="Workspace created; provisioning queued.",
        )
        # After commit: a worker must never look for a row that is not there yet.
        provision_workspace.delay_on_commit(str(workspace.id))
    return workspace


# --- provisioning -----------------------------------------------------------------------------------


def workspace_provision(*, workspace_id: str, task_id: str = "") -> None:
    """Take a workspace from ``creating`` to ``running``, resuming wherever an earlier run stopped.

    Transient driver errors propagate (the task retries them); permanent ones end in ``error``
    with the provider's reason, after the driver has destroyed whatever was made.
    """
    workspace = Workspace.objects.select_related("project").filter(pk=workspace_id).first()
    if workspace is None:
        logger.warning("provision: workspace %s does not exist; nothing to do", workspace_id)
        return
    driver = get_driver(workspace.driver)
    try:
        if workspace.status == S.CREATING:
            machine = driver.find(str(workspace.id)) or driver.create(_machine_spec(workspace))
            moved = _transition(
                workspace,
                S.STARTING,
                SYSTEM,
                task_id=task_id,
                message=f"Machine {machine.machine_id} and its volume were created; booting.",
                machine_id=machine.machine_id,
                volume_id=machine.volume_id,
                git_ref=machine.git_ref,
            )
            if not moved:
                logger.info(
                    "provision: %s moved on without us (now %s)", workspace.id, _status_of(workspace.id)
                )
                return
        if workspace.status == S.STARTING and workspace.machine_id:
            machine = driver.wait_started(
                workspace.machine_id, timeout=settings.WORKSPACE_START_TIMEOUT_SECONDS
            )
            _transition(
                workspace,
                S.RUNNING,
                SYSTEM,
                task_id=task_id,
                message=f"Machine {machine.machine_id} is up at {machine.private_ip}.",
                private_ip=machine.private_ip,
                git_ref=machine.git_ref or workspace.git_ref,
            )
    except DriverError as exc:
        if exc.transient:
            raise
        workspace_fail(workspace=workspace, message=exc.message, task_id=task_id)


def workspace_fail(*, workspace: Workspace, message: str, task_id: str = "", actor: Actor = SYSTEM) -> bool:
    """Move a workspace to ``error`` with ``message``, destroying what the provider holds for it so
    that nothing is left behind. Returns False if the workspace had already moved on."""
    driver = get_driver(workspace.driver)
    try:
        driver.destroy(str(workspace.id))
    except DriverError as exc:
        message = f"{message} Cleaning up at the provider also failed: {exc.message}"
    return _transition(
        workspace,
        S.ERROR,
        actor,
        task_id=task_id,
        kind=WorkspaceEvent.Kind.ERROR,
        message=message,
        error_message=message,
        machine_id=None,
        volume_id=None,
        private_ip=None,
    )


def workspace_provision_gave_up(*, workspace_id: str, message: str, task_id: str = "") -> None:
    """The task ran out of retries on transient errors: say so, and clean up."""
    workspace = Workspace.objects.filter(pk=workspace_id, status__in=[S.CREATING, S.STARTING]).first()
    if workspace is not None:
        workspace_fail(
            workspace=workspace,
            message=f"Provisioning gave up after repeated provider errors: {message}",
            task_id=task_id,
        )


def _machine_spec(workspace: Workspace) -> MachineSpec:
    return MachineSpec(
        workspace_id=str(workspace.id),
        hardware=workspace.hardware,
        repo_url=workspace.project.repo_url,
        branch=workspace.project.default_branch,
    )


# --- transitions and the timeline -------------------------------------------------------------------


def _transition(
    workspace: Workspace,
    to: str,
    actor: Actor,
    *,
    message: str = "",
    task_id: str = "",
    kind: str = WorkspaceEvent.Kind.STATUS,
    error_message: str | None = None,
    **fields: Any,
) -> bool:
    """Move ``workspace`` from the status it was loaded with to ``to``, if nobody moved it first."""
    now = timezone.now()
    values = {
        "status": to,
        "status_changed_at": now,
        "updated_at": now,
        "error_message": error_message,
        **fields,
    }
    with transaction.atomic():
        if not Workspace.objects.filter(pk=workspace.pk, status=workspace.status).update(**values):
            return False
        from_status = workspace.status
        for name, value in values.items():
            setattr(workspace, name, value)
        _record(
            workspace,
            actor,
            kind=kind,
            from_status=from_status,
            to_status=to,
            message=message,
            task_id=task_id,
        )
    return True


def _record(workspace: Workspace, actor: Actor, **fields: Any) -> WorkspaceEvent:
    return WorkspaceEvent.objects.create(
        workspace=workspace, actor_kind=actor.kind, actor_user=actor.user, actor_token=actor.token, **fields
    )


def _status_of(workspace_id) -> str | None:
    return Workspace.objects.filter(pk=workspace_id).values_list("status", flat=True).first()
