"""Writes for workspaces: creation, provisioning, and the status transitions they make.

Every transition is a conditional UPDATE (``WHERE status = <what we saw>``) in the same
transaction as its event, so two runs of the same task cannot both act, and the timeline always
says who or what moved a workspace.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from accounts.actors import SYSTEM, Actor
from accounts.models import User
from accounts.services import user_settings_get
from config.api.errors import ApiError, ValidationFailed
from projects.models import Project
from projects.selectors import project_get_for
from workspaces import hardware as hw
from workspaces import operations, scheduling
from workspaces.agent_tokens import agent_token_for
from workspaces.attempts import attempt
from workspaces.drivers import DriverError, MachineSpec, MachineState, get_driver
from workspaces.models import Workspace, WorkspaceEvent, WorkspaceStatus
from workspaces.operations import Operation
from workspaces.quotas import quota_check

logger = logging.getLogger(__name__)
S = WorkspaceStatus


# --- creation -------------------------------------------------------------------------------------


def workspace_hardware_resolve(*, user: User, requested: dict[str, Any] | None) -> hw.Hardware:
    """The caller's defaults with ``requested`` laid over them, checked against every rule of the
    catalogue and what the driver can offer. Raises ``ValidationFailed`` with one detail per rule."""
    defaults = user_settings_get(user=user)
    merged = hw.merge(hw.Hardware(**{f: getattr(defaults, f) for f in hw.FIELDS}), requested)
    hw.check(merged)
    return merged


def workspace_plan(*, user: User, hardware: dict[str, Any] | None) -> hw.Hardware:
    """Everything a create checks, without creating anything (``?dry_run=true``): the merged
    hardware, its rules, and the user's quota. Returns the hardware that would be used."""
    resolved = workspace_hardware_resolve(user=user, requested=hardware)
    quota_check(user=user, adding=resolved)
    return resolved


@dataclass(frozen=True)
class CreateLock:
    """The locks a create needs, taken by ``workspace_create_lock`` in the caller's transaction, and
    what they found: the project the user may create in. Only ``workspace_create_lock`` makes one."""

    user: User
    project: Project


def workspace_create_lock(*, user: User, project_id: str) -> CreateLock:
    """Step one of every create, inside the caller's ``transaction.atomic()``: lock the user's row,
    then read the project as every view reads it (404 if the user may not see it, 403 if they may not
    create in it) with its row locked. Then ``workspace_create`` in the same transaction. Two steps,
    so that the API refuses an inaccessible project before it reads the request's body.

    The user's row: one create per user at a time past this line, so two concurrent creates cannot
    both squeeze into the last slot of a quota (PostgreSQL row locks; SQLite serializes writers).
    Only creates lock a user's row, so taking it first cannot deadlock. The project's: a concurrent
    project delete holds it, and once that commits the project is no longer live (not found)."""
    _require_transaction("workspace_create_lock")
    User.objects.select_for_update().filter(pk=user.pk).exists()
    project = project_get_for(user=user, project_id=project_id, action="create_workspace", for_update=True)
    return CreateLock(user=user, project=project)


def workspace_create(
    *, lock: CreateLock, hardware: dict[str, Any] | None, keep_active: bool, actor: Actor
) -> Workspace:
    """A new workspace in ``creating``, in the transaction that took ``lock``; provisioning is queued
    once that transaction commits. What it raises must roll that transaction back (nothing half-made)."""
    _require_transaction("workspace_create")
    user, project = lock.user, lock.project
    resolved = workspace_hardware_resolve(user=user, requested=hardware)
    quota_check(user=user, adding=resolved)
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
    _queue_on_commit(operations.PROVISION, workspace)
    return workspace


def _require_transaction(name: str) -> None:
    # Outside a transaction each statement commits alone: the locks would be gone at once.
    if not transaction.get_connection().in_atomic_block:
        raise TransactionManagementError(f"{name} must run inside transaction.atomic().")


# --- lifecycle operations (the API and the admin call these) ----------------------------------------


class InvalidState(ApiError):
    code = "invalid_state"


def _require_state(workspace: Workspace, operation: Operation) -> None:
    """The statuses an operation may start from are its table entry's (workspaces/operations.py)."""
    allowed = operation.allowed_from
    if workspace.status in allowed:
        return
    message = (
        f"Cannot {operation.name} a workspace that is '{workspace.status}'; "
        f"{operation.name} needs {' or '.join(repr(str(s)) for s in allowed)}."
    )
    raise InvalidState(
        message,
        details=[
            {
                "field": "status",
                "code": "invalid_state",
                "message": message,
                "allowed": {"choices": [str(s) for s in allowed]},
            }
        ],
    )


def workspace_start(*, workspace: Workspace, actor: Actor) -> Workspace:
    """``stopped`` or ``error`` → ``starting``; a worker boots the machine (or re-creates one that a
    failed provisioning removed) and takes it to ``running``."""
    _require_state(workspace, operations.START)
    with transaction.atomic():
        if not _transition(
            workspace,
            operations.START.runs_in,
            actor,
            message="Start requested.",
            last_activity_at=timezone.now(),
        ):
            _refresh_and_refuse(workspace, operations.START)
        _queue_on_commit(operations.START, workspace)
    return workspace


def workspace_stop(
    *,
    workspace: Workspace,
    actor: Actor,
    reason: str = "Stop requested.",
    only_if_idle_since: datetime | None = None,
) -> Workspace:
    """``running`` (or ``stop_failed``) → ``stopping``; a worker stops the machine. The volume stays.

    ``only_if_idle_since`` (idle auto-stop): stop only if there has been no activity since then and
    ``keep_active`` is still off, checked in the same UPDATE, so a heartbeat that lands after the
    idle workspaces were selected still saves this one.
    """
    _require_state(workspace, operations.STOP)
    with transaction.atomic():
        guard = (
            {}
            if only_if_idle_since is None
            else {"last_activity_at__lt": only_if_idle_since, "keep_active": False}
        )
        if not _transition(
            workspace,
            operations.STOP.runs_in,
            actor,
            message=reason,
            guard=guard,
            last_activity_at=timezone.now(),
        ):
            _refresh_and_refuse(workspace, operations.STOP)
        _queue_on_commit(operations.STOP, workspace)
    return workspace


def workspace_update(*, workspace: Workspace, actor: Actor, keep_active: bool | None = None) -> Workspace:
    """Change what a user may change (``keep_active``). Counts as activity."""
    now = timezone.now()
    with transaction.atomic():
        changes: dict[str, Any] = {"last_activity_at": now, "updated_at": now}
        if keep_active is not None and keep_active != workspace.keep_active:
            changes["keep_active"] = keep_active
            _record(
                workspace,
                actor,
                kind=WorkspaceEvent.Kind.INFO,
                message=f"keep_active set to {str(keep_active).lower()}.",
            )
        Workspace.objects.filter(pk=workspace.pk).update(**changes)
        for name, value in changes.items():
            setattr(workspace, name, value)
    return workspace


def workspace_delete(*, workspace: Workspace, actor: Actor) -> None:
    """Gone from the API at once; its machine and volume are destroyed in the background. The row
    stays for operators, with the outcome on its timeline."""
    now = timezone.now()
    with transaction.atomic():
        if not Workspace.objects.filter(pk=workspace.pk, deleted_at__isnull=True).update(
            deleted_at=now, updated_at=now
        ):
            return  # already deleted: deleting is idempotent
        workspace.deleted_at = now
        _record(
            workspace,
            actor,
            kind=WorkspaceEvent.Kind.INFO,
            message=f"Deleted while '{workspace.status}'; destroying its machine and volume.",
        )
        _queue_on_commit(operations.DESTROY, workspace)


def workspaces_delete_of_project(*, project: Project, actor: Actor) -> None:
    """Delete every live workspace of a project being deleted (``projects.services.project_delete``
    calls it, inside its transaction: the workspaces app registers it at start-up)."""
    for workspace in Workspace.live.filter(project=project).order_by("created_at", "id"):
        workspace_delete(workspace=workspace, actor=actor)


# --- background work: each resumes from the row, so a duplicated or retried task is harmless ----------


def workspace_provision(*, workspace_id: str, task_id: str = "") -> None:
    """Take a workspace in ``creating`` or ``starting`` to ``running``, resuming wherever an earlier
    run stopped: a machine an interrupted attempt made is found by the workspace id and adopted.

    Transient driver errors propagate (the task retries them). A permanent one ends in ``error``
    with the provider's reason; if the workspace was never up, what was made is destroyed (nothing
    is left behind), otherwise its volume is kept so that no work is lost.
    """
    workspace = Workspace.live.select_related("project").filter(pk=workspace_id).first()
    if workspace is None or workspace.status not in (S.CREATING, S.STARTING):
        logger.info("provision: workspace %s is gone or moved on; nothing to do", workspace_id)
        return
    driver = get_driver(workspace.driver)
    try:
        with attempt(workspace, operations.PROVISION.label, task_id) as run:
            _provision(workspace, driver, run, task_id)
    except DriverError as exc:
        if exc.transient:
            raise
        workspace_fail(workspace=workspace, message=exc.message, task_id=task_id)


def _provision(workspace: Workspace, driver, run, task_id: str) -> None:
    machine = driver.find(str(workspace.id))
    if machine is None:
        machine = driver.create(_machine_spec(workspace, first_attempt=run.number == 1))
    elif machine.state in (MachineState.STOPPED, MachineState.FAILED):
        machine = driver.start(machine.machine_id)
    run.request_id = machine.request_id or run.request_id
    if workspace.status == S.CREATING:
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
    else:
        moved = _update_if(workspace, machine_id=machine.machine_id, volume_id=machine.volume_id)
    if not moved:
        _abandon(workspace, driver, task_id)
        return
    machine = driver.wait_started(machine.machine_id, timeout=settings.WORKSPACE_START_TIMEOUT_SECONDS)
    run.request_id = machine.request_id or run.request_id
    moved = _transition(
        workspace,
        S.RUNNING,
        SYSTEM,
        task_id=task_id,
        message=f"Machine {machine.machine_id} is up at {machine.private_ip}.",
        private_ip=machine.private_ip,
        git_ref=machine.git_ref or workspace.git_ref,
        provisioned_at=workspace.provisioned_at or timezone.now(),
    )
    if not moved:
        _abandon(workspace, driver, task_id)


def workspace_run_stop(*, workspace_id: str, task_id: str = "") -> None:
    """Stop the machine of a workspace in ``stopping``: ``stopped``, or ``stop_failed`` with why."""
    workspace = Workspace.live.filter(pk=workspace_id, status=S.STOPPING).first()
    if workspace is None:
        return
    driver = get_driver(workspace.driver)
    try:
        with attempt(workspace, operations.STOP.label, task_id) as run:
            if workspace.machine_id and driver.find(str(workspace.id)) is not None:
                run.request_id = driver.stop(workspace.machine_id).request_id or ""
    except DriverError as exc:
        if exc.transient:
            raise
        workspace_stop_failed(workspace=workspace, message=exc.message, task_id=task_id)
        return
    _transition(workspace, S.STOPPED, SYSTEM, task_id=task_id, message="Machine stopped; its volume is kept.")


def workspace_stop_failed(*, workspace: Workspace, message: str, task_id: str = "") -> bool:
    return _transition(
        workspace,
        S.STOP_FAILED,
        SYSTEM,
        task_id=task_id,
        kind=WorkspaceEvent.Kind.ERROR,
        message=f"Stopping failed: {message}",
        error_message=f"Stopping failed: {message}",
    )


def workspace_destroy(*, workspace_id: str, task_id: str = "") -> None:
    """Destroy a deleted workspace's machine and volume. Transient errors propagate for a retry."""
    workspace = Workspace.objects.filter(
        pk=workspace_id, deleted_at__isnull=False, destroyed_at__isnull=True
    ).first()
    if workspace is None:
        return
    with attempt(workspace, operations.DESTROY.label, task_id):
        get_driver(workspace.driver).destroy(str(workspace.id))
    now = timezone.now()
    Workspace.objects.filter(pk=workspace.pk).update(destroyed_at=now, updated_at=now, private_ip=None)
    _record(
        workspace,
        SYSTEM,
        kind=WorkspaceEvent.Kind.INFO,
        message="Machine and volume destroyed.",
        task_id=task_id,
    )


def workspace_fail(*, workspace: Workspace, message: str, task_id: str = "", actor: Actor = SYSTEM) -> bool:
    """Move a workspace to ``error`` with ``message``. One that never ran has what was made for it
    destroyed (nothing is left behind); one that ran keeps its volume, so a start can retry.

    The transition comes first, and destroys nothing if it loses. ``workspace`` may be a stale row
    (the admin's "Force to error", the reconciler's ceiling): if provisioning took the workspace to
    ``running`` meanwhile, destroying first would leave a ``running`` row without its machine and
    volume. The transition is also guarded on "never provisioned", so what is destroyed is never a
    workspace that ran. It commits before the provider is called (callers hold no transaction); if
    that cleanup fails, the reconciler destroys what is left: a workspace that failed before it
    ever ran is an orphan's owner (reconciler.orphan_reason)."""
    never_ran = workspace.provisioned_at is None
    fields: dict[str, Any] = {}
    if never_ran:
        fields = {"machine_id": None, "volume_id": None, "private_ip": None, "git_ref": None}
    moved = _transition(
        workspace,
        S.ERROR,
        actor,
        task_id=task_id,
        kind=WorkspaceEvent.Kind.ERROR,
        message=message,
        error_message=message,
        guard={"provisioned_at__isnull": True} if never_ran else None,
        **fields,
    )
    if moved and never_ran:
        try:
            get_driver(workspace.driver).destroy(str(workspace.id))
        except DriverError as exc:
            failed = (
                f"{message} Cleaning up at the provider also failed: {exc.message} "
                "The reconciler will destroy what is left."
            )
            _update_if(workspace, error_message=failed)
            _record(workspace, SYSTEM, kind=WorkspaceEvent.Kind.ERROR, message=failed, task_id=task_id)
    return moved


def workspace_force_error(*, workspace: Workspace, actor: Actor, reason: str) -> Workspace:
    """An operator moves a live workspace to ``error`` with a reason (the admin's "Force to error"),
    from any state but ``error``: what ``workspace_fail`` does on a provider failure, so that a start
    can recover it. A task still working on it sees the row moved on and stands down."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("A reason is needed to force a workspace to error.")
    if workspace.deleted_at is not None:
        raise InvalidState("Cannot force a deleted workspace to error; it is already being destroyed.")
    if workspace.status == S.ERROR:
        raise InvalidState(
            "Cannot force a workspace that is 'error' to error; force to error needs any other state."
        )
    if not workspace_fail(
        workspace=workspace, message=f"Forced to error by an operator: {reason}", actor=actor
    ):
        raise InvalidState("The workspace changed while it was being forced to error; try again.")
    return workspace


class QueueUnavailable(ApiError):
    status_code = 503
    code = "queue_unavailable"
    message = "The task queue cannot take the work now; try again."


def workspace_requeue(*, workspace: Workspace, actor: Actor, reason: str) -> Operation:
    """Queue again the work a workspace waits on: its status's operation (``creating``: provision,
    ``stopping``: stop, ...), or its destroy once deleted. What the reconciler does for lost work and
    an operator's "Queue its work again"; queuing twice is harmless (every task resumes from the
    row). The message is sent now, and only then does the timeline say who queued what and why
    (``reason``): a broker that cannot take it is a ``QueueUnavailable`` and records nothing.
    Raises ``InvalidState`` if the workspace waits on no work. Returns the operation queued."""
    operation = operations.pending(status=workspace.status, deleted=workspace.deleted_at is not None)
    if operation is None or workspace.destroyed_at is not None:
        state = "destroyed" if workspace.destroyed_at else workspace.status
        transient = " or ".join(repr(s) for s in operations.transient_statuses())
        raise InvalidState(
            f"Cannot queue the work of a workspace that is '{state}' again: it waits on none "
            f"(work runs while {transient}, or once deleted until destroyed)."
        )
    try:
        scheduling.send(operation.task, str(workspace.id), queue=operation_queue(operation, workspace))
    except Exception as exc:  # whatever the broker raises (down, restarting, refusing)
        # Its text may name the broker's host (and credentials): logged, not shown.
        logger.warning("requeue: the broker refused the %s of %s: %s", operation.label, workspace.id, exc)
        raise QueueUnavailable(f"The task queue cannot take the {operation.label} now; try again.") from exc
    record_event(
        workspace,
        kind=WorkspaceEvent.Kind.INFO,
        message=f"{reason}; queued the {operation.label} again.",
        actor=actor,
    )
    return operation


def workspace_gave_up(*, workspace_id: str, message: str, task_id: str = "") -> None:
    """A task ran out of retries on transient provider errors: say so, in the state's failure."""
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is None:
        return
    message = f"Gave up after repeated provider errors: {message}"
    if workspace.deleted_at is not None:
        _record(
            workspace,
            SYSTEM,
            kind=WorkspaceEvent.Kind.ERROR,
            message=f"Destroying failed. {message}",
            task_id=task_id,
        )
        return
    operation = operations.running_in(workspace.status)  # where its work fails to: the table's entry
    if operation is None:
        return
    if operation.fails_to == S.STOP_FAILED:
        workspace_stop_failed(workspace=workspace, message=message, task_id=task_id)
    else:
        workspace_fail(workspace=workspace, message=message, task_id=task_id)


def _machine_spec(workspace: Workspace, *, first_attempt: bool = False) -> MachineSpec:
    workspace_id = str(workspace.id)
    heartbeat_url = f"{settings.WORKSPACE_HEARTBEAT_BASE_URL.rstrip('/')}/workspaces/{workspace_id}/heartbeat"
    return MachineSpec(
        workspace_id=workspace_id,
        hardware=workspace.hardware,
        repo_url=workspace.project.repo_url,
        branch=workspace.project.default_branch,
        # What the machine's agent needs to report activity (idle auto-stop, workspaces/idle.py).
        env={
            "WORKSPACE_ID": workspace_id,
            "WORKSPACE_AGENT_TOKEN": agent_token_for(workspace.id),
            "WORKSPACE_HEARTBEAT_URL": heartbeat_url,
        },
        first_attempt=first_attempt,
    )


def _abandon(workspace: Workspace, driver, task_id: str) -> None:
    """The row moved on under us (deleted, failed by an operator, or taken by another run)."""
    current = Workspace.objects.filter(pk=workspace.pk).values("status", "deleted_at", "machine_id").first()
    logger.info("provision: %s moved on without us (now %s)", workspace.id, current)
    if current is None or current["deleted_at"] is not None:
        # Deleted while we were making its machine: the destroy task may already have run.
        driver.destroy(str(workspace.id))


def _refresh_and_refuse(workspace: Workspace, operation: Operation) -> None:
    workspace.refresh_from_db(fields=["status"])
    _require_state(workspace, operation)
    raise InvalidState(f"The workspace changed during the {operation.name} request; try again.")


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
    guard: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Move ``workspace`` from the status it was loaded with to ``to``, if nobody moved it (or
    deleted it) first. The update and its event commit together."""
    now = timezone.now()
    values = {
        "status": to,
        "status_changed_at": now,
        "updated_at": now,
        "error_message": error_message,
        **fields,
    }
    with transaction.atomic():
        if not Workspace.live.filter(pk=workspace.pk, status=workspace.status, **(guard or {})).update(
            **values
        ):
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


def _update_if(workspace: Workspace, **fields: Any) -> bool:
    """Set provider fields if the workspace is still where we saw it."""
    fields["updated_at"] = timezone.now()
    if not Workspace.live.filter(pk=workspace.pk, status=workspace.status).update(**fields):
        return False
    for name, value in fields.items():
        setattr(workspace, name, value)
    return True


def _queue_on_commit(operation: Operation, workspace: Workspace) -> None:
    """Queue ``operation``'s task for ``workspace`` once the transaction commits."""
    scheduling.send_on_commit(operation.task, str(workspace.id), queue=operation_queue(operation, workspace))


def operation_queue(operation: Operation, workspace: Workspace) -> str | None:
    """The queue for ``operation``'s work on ``workspace``: the clone queue only for work that may
    clone (``provision_queue``), else None (the default queue)."""
    return provision_queue(workspace) if operation.may_clone else None


def provision_queue(workspace: Workspace) -> str | None:
    """The queue for this workspace's provisioning: ``WORKSPACE_CLONE_QUEUE`` if the run may clone
    the project's repository on this host (a driver that clones in the worker, a repository, and
    no machine yet: one that never ran is made anew, clone included), else None (the default queue).
    A repository that hangs then holds only the clone workers' slots."""
    if (
        workspace.provisioned_at is None
        and workspace.project.repo_url
        and get_driver(workspace.driver).clones_on_host
    ):
        return settings.WORKSPACE_CLONE_QUEUE
    return None


def record_event(workspace: Workspace, *, kind: str, message: str, actor: Actor = SYSTEM) -> WorkspaceEvent:
    """A note on the workspace's timeline that is not a status change (the reconciler's decisions)."""
    return _record(workspace, actor, kind=kind, message=message)


def _record(workspace: Workspace, actor: Actor, **fields: Any) -> WorkspaceEvent:
    event = _event(workspace, actor, **fields)
    event.save(force_insert=True)
    return event


def _event(workspace: Workspace, actor: Actor, **fields: Any) -> WorkspaceEvent:
    return WorkspaceEvent(
        workspace=workspace, actor_kind=actor.kind, actor_user=actor.user, actor_token=actor.token, **fields
    )
