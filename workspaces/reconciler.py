"""The reconciler: a periodic pass that looks at rows, not messages.

Celery is only a trigger. Whatever happened to a message — lost with a broker restart, taken by
a worker that was killed, never sent because a process died right after its commit — the rows say
what should be true, and this pass makes it so:

1. **Ceilings.** No state is transient forever (docs/api.md, "The workspace lifecycle"): a
   workspace still ``creating``, ``starting`` or ``stopping`` past its ceiling goes to ``error`` /
   ``stop_failed`` with a message that says what timed out, and what was made for it is cleaned up.
2. **Lost work.** A workspace in a transient state (or deleted but not yet destroyed) with no
   progress for ``WORKSPACE_REQUEUE_AFTER_SECONDS`` has its task queued again. "No progress" is
   read from its attempts: none since the state began, or the last one ended long enough ago that
   its retry should have run, or it is still open long after any task could have run (its worker
   died). Queuing twice is harmless: every task resumes from the row.
3. **Inventory.** What the provider holds is compared with our rows: a machine for a deleted or
   unknown workspace, or for one that failed before it ever ran, is an orphan and is destroyed; a
   ``running`` or ``stopped`` workspace whose machine is gone (or died) goes to ``error``, saying so;
   a second machine (or volume) held for a ``running`` or ``stopped`` workspace is destroyed, its
   own machine and volume kept.

Every decision is an event on the workspace's timeline (actor: system), and a log line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.utils import timezone

from accounts.actors import SYSTEM, Actor
from config.api.errors import NotFound
from config.operations.logs import each_logged
from config.operations.metrics import count_reconciler_pass
from config.values import duration_text, parse_uuid
from workspaces import operations, services
from workspaces.attempts import attempt_abandon, last_attempt
from workspaces.drivers import DriverError, Machine, MachineState, Volume, get_driver
from workspaces.models import Workspace, WorkspaceEvent, WorkspaceStatus

logger = logging.getLogger(__name__)
S = WorkspaceStatus
LOCK_KEY = "workspaces:reconciler"


@dataclass
class Report:
    """What one pass did, for the task's log and for tests."""

    timed_out: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    orphans_destroyed: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    skipped: bool = False


@dataclass(frozen=True)
class Orphan:
    """What the provider holds under a workspace id that no live workspace owns, or a live
    workspace's duplicate machine or volume: the sweep destroys it; the admin's orphans page lists it."""

    workspace_id: str
    workspace: Workspace | None  # None: no such row
    resources: list[str]  # in words, e.g. "machine m-1 (started)", "volume vol-1"
    reason: str
    # A duplicate's: the workspace's own machine, kept (with its volume) when the rest is destroyed.
    keep_machine_id: str | None = None


@dataclass(frozen=True)
class Drift:
    """A live ``running`` or ``stopped`` workspace whose machine is gone or dead, and why we think so."""

    workspace: Workspace
    why: str


def reconcile(*, now: datetime | None = None) -> Report:
    """One pass. Two passes never overlap (a cache lock), so a slow one cannot be doubled up."""
    if not cache.add(LOCK_KEY, "1", timeout=settings.WORKSPACE_RECONCILE_LOCK_SECONDS):
        return Report(skipped=True)
    try:
        now = now or timezone.now()
        report = Report()
        _time_out_stuck(now, report)
        _requeue_lost_work(now, report)
        _sweep_inventory(report)
        if any((report.timed_out, report.requeued, report.orphans_destroyed, report.vanished)):
            logger.info("reconciler: %s", report)
        count_reconciler_pass(report)
        return report
    finally:
        cache.delete(LOCK_KEY)


# --- 1. ceilings --------------------------------------------------------------------------------------


def _time_out_stuck(now: datetime, report: Report) -> None:
    # Each operation's transient status, with its ceiling (workspaces/operations.py).
    for operation in operations.all_operations():
        seconds = settings.WORKSPACE_STATE_CEILINGS_SECONDS.get(operation.runs_in)
        if seconds is None:
            continue
        status = operation.runs_in
        stuck = Workspace.live.filter(status=status, status_changed_at__lt=now - timedelta(seconds=seconds))
        for workspace in each_logged(stuck.select_related("project")):
            message = f"Timed out: still '{status}' after {duration_text(seconds)}."
            if operation.fails_to == S.STOP_FAILED:
                moved = services.workspace_stop_failed(workspace=workspace, message=message)
            else:
                kept = (
                    "its volume is kept; start it to try again"
                    if workspace.provisioned_at
                    else "nothing was kept"
                )
                moved = services.workspace_fail(
                    workspace=workspace, message=f"{message} The reconciler gave up ({kept})."
                )
            if moved:
                report.timed_out.append(str(workspace.id))


# --- 2. lost work ---------------------------------------------------------------------------------------


def _requeue_lost_work(now: datetime, report: Report) -> None:
    quiet = timedelta(seconds=settings.WORKSPACE_REQUEUE_AFTER_SECONDS)
    transient = Workspace.live.filter(
        status__in=operations.transient_statuses(), status_changed_at__lt=now - quiet
    )
    undestroyed = Workspace.objects.filter(deleted_at__lt=now - quiet, destroyed_at__isnull=True)
    for workspace in each_logged([*transient, *undestroyed]):
        operation = operations.pending(status=workspace.status, deleted=workspace.deleted_at is not None)
        since = workspace.deleted_at or workspace.status_changed_at
        why = _why_stalled(workspace, operation.label, since, now, quiet)
        if why is None:
            continue
        services.workspace_requeue(workspace=workspace, actor=SYSTEM, reason=f"Reconciler: {why}")
        report.requeued.append(str(workspace.id))


def _why_stalled(
    workspace: Workspace, operation: str, since: datetime, now: datetime, quiet: timedelta
) -> str | None:
    """Why this workspace's work seems lost, or None while it may still be under way."""
    attempt = last_attempt(workspace, operation)
    # An open attempt first, whenever it began: a provisioning run moves its workspace from
    # `creating` to `starting` itself, so the attempt of a run that died in `starting` is older
    # than the status. Left open, it would make the run queued again stand down.
    if attempt is not None and attempt.duration_ms is None:
        presumed_dead = timedelta(seconds=settings.WORKSPACE_ATTEMPT_PRESUMED_DEAD_SECONDS)
        if attempt.created_at < now - presumed_dead:
            # Closed, so that the run queued again does not stand down for it (workspaces/attempts.py).
            attempt_abandon(attempt, now=now)
            return f"attempt {attempt.pk} never finished (its worker died)"
        return None
    if attempt is None or attempt.created_at < since:
        return f"no worker took the {operation} within {duration_text(quiet.total_seconds())}"
    ended = attempt.created_at + timedelta(milliseconds=attempt.duration_ms)
    if ended < now - quiet:
        return f"no retry followed the attempt that ended at {ended:%H:%M:%S} UTC"
    return None


# --- 3. inventory -----------------------------------------------------------------------------------------


def _sweep_inventory(report: Report) -> None:
    driver = get_driver()
    try:
        orphans, drift = inventory(driver)
    except DriverError as exc:
        logger.warning("reconciler: could not list what %s holds: %s", driver.name, exc.message)
        return
    for orphan in each_logged(orphans, lambda orphan: orphan.workspace_id):
        try:
            orphan_destroy(driver, orphan)
        except DriverError as exc:
            what = ", ".join(orphan.resources)
            logger.warning(
                "reconciler: could not destroy %s of %s: %s", what, orphan.workspace_id, exc.message
            )
        else:
            report.orphans_destroyed.append(orphan.workspace_id)
    for item in each_logged(drift, lambda item: str(item.workspace.id)):
        if services.workspace_fail(workspace=item.workspace, message=item.why):
            report.vanished.append(str(item.workspace.id))


def inventory(driver) -> tuple[list[Orphan], list[Drift]]:
    """What the provider holds that no live workspace owns, and live ``running``/``stopped``
    workspaces of this driver whose machine is gone or dead: what the sweep acts on, and what the
    admin's orphans-and-drift page shows. Raises ``DriverError`` if the provider cannot be listed."""
    machines = driver.list_machines()
    volumes = driver.list_volumes()
    held: dict[str, list[Machine | Volume]] = {}  # workspace id -> its machines and volumes
    states: dict[str, list[MachineState]] = {}
    for machine in machines:
        held.setdefault(machine.workspace_id, []).append(machine)
        states.setdefault(machine.workspace_id, []).append(machine.state)
    for volume in volumes:
        held.setdefault(volume.workspace_id or "", []).append(volume)
    # A provider holds a machine for nearly every live workspace. One pass over the live rows' few
    # deciding columns (no list of ids sent, no whole rows loaded) finds the workspaces that own
    # what they hold and those whose machine drifted; whole rows (with their project and owner) are
    # loaded only for the few acted on. At 100,000 rows, sending every held id back to the database
    # and loading every row as a model was nearly all of a pass's time (docs/benchmarks.md).
    owners: set[str] = set()
    whys: dict[str, str] = {}
    # workspace id -> (its machine, what else is held)
    duplicates: dict[str, tuple[str, list[Machine | Volume]]] = {}
    live = (
        Workspace.live.order_by()
        .annotate(ran=ExpressionWrapper(Q(provisioned_at__isnull=False), output_field=BooleanField()))
        .values_list("id", "status", "ran", "driver", "machine_id")
    )
    for pk, status, ran, driver_name, machine_id in live.iterator(chunk_size=10_000):
        workspace_id = str(pk)
        if status != S.ERROR or ran:  # what orphan_reason says of a live row, without its dates
            owners.add(workspace_id)
        if driver_name != driver.name or status not in (S.RUNNING, S.STOPPED) or machine_id is None:
            continue
        extras = _duplicates(held.get(workspace_id, []), machine_id)
        if extras:
            duplicates[workspace_id] = (machine_id, extras)
        seen = states.get(workspace_id, [])
        if not seen:
            whys[workspace_id] = f"Machine {machine_id} vanished at the provider."
        elif status == S.RUNNING and all(s in _DOWN for s in seen):
            whys[workspace_id] = (
                f"Machine {machine_id} stopped unexpectedly (it is '{seen[0]}'); "
                "start the workspace to boot it again."
            )
    # Ids that are not UUIDs are not ours (no workspace tag): the reconciler leaves them alone too.
    suspects = sorted(wid for wid in held if wid not in owners and parse_uuid(wid) is not None)
    rows = {
        str(w.pk): w
        for w in Workspace.objects.filter(pk__in=[*suspects, *whys, *duplicates]).select_related(
            "project", "created_by"
        )
    }
    orphans = []
    for workspace_id in suspects:
        workspace = rows.get(workspace_id)
        reason = orphan_reason(workspace)
        if reason is not None:
            orphans.append(
                Orphan(
                    workspace_id=workspace_id,
                    workspace=workspace,
                    resources=[_resource(r) for r in held[workspace_id]],
                    reason=reason,
                )
            )
    for workspace_id, (machine_id, extras) in sorted(duplicates.items()):
        if workspace_id in rows:
            orphans.append(
                Orphan(
                    workspace_id=workspace_id,
                    workspace=rows[workspace_id],
                    resources=[_resource(r) for r in extras],
                    reason=f"a duplicate: the workspace runs on machine {machine_id}, which is kept",
                    keep_machine_id=machine_id,
                )
            )
    drift = [Drift(workspace=rows[pk], why=why) for pk, why in whys.items() if pk in rows]
    drift.sort(key=lambda item: (item.workspace.created_at, str(item.workspace.pk)))
    return orphans, drift


# A running workspace whose every machine is in one of these has lost its machine.
_DOWN = (MachineState.STOPPED, MachineState.FAILED, MachineState.DESTROYED)


def _duplicates(held: list[Machine | Volume], machine_id: str) -> list[Machine | Volume]:
    """What the provider holds for a ``running`` or ``stopped`` workspace besides its own machine
    (``machine_id``) and the volume that machine mounts: a duplicated provisioning's leftovers, which
    adoption (docs/api.md, "The workspace lifecycle") should have made impossible but a provider can
    still end up with (an answer lost after the provider acted, a hand-made machine). Nothing, if the
    workspace's own machine is not among them (that is drift), or if its volume is unknown (volumes
    are then left alone: the data might be the workspace's)."""
    machines = [h for h in held if isinstance(h, Machine)]
    kept = next((m for m in machines if m.machine_id == machine_id), None)
    if kept is None:
        return []
    others = [m for m in machines if m.machine_id != machine_id]
    volumes = [h for h in held if isinstance(h, Volume) and kept.volume_id and h.volume_id != kept.volume_id]
    return [*others, *volumes]


def _resource(held: Machine | Volume) -> str:
    """A machine or a volume, in words for the timeline and the admin."""
    if isinstance(held, Volume):
        return f"volume {held.volume_id}"
    return f"machine {held.machine_id} ({held.state})"


def orphan_destroy(driver, orphan: Orphan, *, actor: Actor = SYSTEM) -> str:
    """Destroy what the provider holds for an orphan (an item of ``inventory``'s orphans), keeping a
    duplicate's own machine, and say so on its workspace's timeline (if there is a row) with
    ``actor`` as who did it. Returns what was destroyed, in words. Raises ``DriverError``."""
    workspace_id, workspace, reason = orphan.workspace_id, orphan.workspace, orphan.reason
    what = ", ".join(orphan.resources)
    driver.destroy(workspace_id, keep_machine_id=orphan.keep_machine_id)
    who = _who(actor)
    logger.info("%s destroyed orphan %s of workspace %s (%s)", who, what, workspace_id, reason)
    if workspace is not None:
        message = (
            f"{who} destroyed orphan {what}: {reason}."
            if actor.user
            else f"{who}: destroyed {what}: {reason}."
        )
        services.record_event(workspace, kind=WorkspaceEvent.Kind.INFO, message=message, actor=actor)
    return what


def orphan_destroy_by_id(*, workspace_id: str, actor: Actor) -> str:
    """An operator destroys the orphan held for ``workspace_id``: the provider is listed again, so
    only what is an orphan now is destroyed (never what a live workspace owns). Returns what was
    destroyed. Raises ``NotFound`` if the provider holds no orphan for it, ``DriverError`` if the
    provider cannot be listed or the destroy fails."""
    driver = get_driver()
    orphans, _ = inventory(driver) if parse_uuid(workspace_id) is not None else ([], [])
    orphan = next((o for o in orphans if o.workspace_id == workspace_id), None)
    if orphan is None:
        raise NotFound(
            f"Nothing to destroy for {workspace_id}: the provider holds no orphan for it "
            "(it is gone, or belongs to a live workspace)."
        )
    return orphan_destroy(driver, orphan, actor=actor)


def drift_mark_error(*, workspace_id: str, actor: Actor) -> Workspace:
    """An operator settles a drift: a ``running``/``stopped`` workspace whose machine is gone (or died)
    goes to ``error`` saying why, as the sweep would do; Start then recovers it. Raises ``NotFound``
    if it is not drifting now (the provider is listed again), ``InvalidState`` if it moved meanwhile,
    ``DriverError`` if the provider cannot be listed."""
    _, drift = inventory(get_driver()) if parse_uuid(workspace_id) is not None else ([], [])
    item = next((d for d in drift if str(d.workspace.id) == workspace_id), None)
    if item is None:
        raise NotFound(
            f"Workspace {workspace_id} is not drifting (its machine is there, or it is no longer "
            "running or stopped)."
        )
    workspace = item.workspace
    by = f"operator {actor.user.email}" if actor.user is not None else "the reconciler"
    message = f"{item.why} (Marked error by {by}.)"
    if not services.workspace_fail(workspace=workspace, message=message, actor=actor):
        raise services.InvalidState(f"Workspace {workspace_id} changed meanwhile; look again.")
    return workspace


def _who(actor: Actor) -> str:
    """Who acted, as the timeline says it: "Reconciler", or "Operator <email>"."""
    if actor.user is not None:
        return f"Operator {actor.user.email}"
    return "Reconciler"


def orphan_reason(workspace: Workspace | None) -> str | None:
    """Why a provider resource held for ``workspace`` (None: no such row) is an orphan that may be
    destroyed, or None if it belongs to a live workspace. The admin's orphans page uses it too."""
    if workspace is None:
        return "no such workspace"
    if workspace.deleted_at is not None:
        return "its workspace was deleted"
    if workspace.status == S.ERROR and workspace.provisioned_at is None:
        return "its workspace failed before it ever ran, so it must hold nothing"
    return None
