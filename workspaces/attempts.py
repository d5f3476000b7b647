"""Attempts: one timeline row per run of a task on a workspace (provision, stop, destroy).

The row is written when the run starts and completed when it ends, with its duration, its outcome,
the provider's error in words and the provider's request id. A run whose worker died keeps an open
row (no duration): the reconciler reads that as "picked up, then lost", closes it, and queues the
work again.

One run at a time per workspace and operation: a run that finds another task's attempt still open
(and not yet presumed dead), or the workspace moved on from the status it loaded, stands down with
``StandDown`` before it does anything. A message may be delivered twice (the reconciler queues work
again behind a long backlog, a broker redelivers), and two provisioning runs side by side would each
make a machine, or the second would take the first's volume, be refused, and fail the workspace.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from workspaces.drivers import DriverError
from workspaces.models import ActorKind, AttemptOutcome, Workspace, WorkspaceEvent

logger = logging.getLogger(__name__)


class Attempt:
    """The open row of a run; ``request_id`` may be set by the run as answers come in."""

    def __init__(self, event: WorkspaceEvent, number: int):
        self.event = event
        self.number = number  # 1 for the first run of this operation on the workspace, ever
        self.request_id = ""


class StandDown(Exception):
    """This run has nothing to do: another run of the same operation on the workspace is under way,
    or one already moved the workspace on from the status this run loaded it in."""


@contextmanager
def attempt(workspace: Workspace, operation: str, task_id: str):
    with transaction.atomic():
        # Claims are taken one at a time per workspace (its row's lock on PostgreSQL; SQLite
        # serializes writers), so of two runs that start together exactly one goes ahead.
        locked = (
            Workspace.objects.select_for_update()
            .filter(pk=workspace.pk)
            .values_list("status", "attempts_started")
            .first()
        )
        if locked is None or locked[0] != workspace.status:
            _stand_down(operation, f"another run moved the workspace on from '{workspace.status}'")
        attempts = WorkspaceEvent.objects.filter(
            workspace=workspace, kind=WorkspaceEvent.Kind.ATTEMPT, operation=operation
        )
        presumed_dead = timezone.now() - timedelta(seconds=settings.WORKSPACE_ATTEMPT_PRESUMED_DEAD_SECONDS)
        # An open attempt of this same task id is an earlier delivery of this message, whose worker died.
        other = (
            attempts.filter(duration_ms__isnull=True, created_at__gte=presumed_dead)
            .exclude(task_id=task_id or "")
            .first()
        )
        if other is not None:
            _stand_down(operation, f"another run is under way (attempt {other.pk}, task {other.task_id})")
        # Numbered from the workspace's own counter, not by counting timeline rows: rows may be
        # pruned, and the number decides whether a provisioning run looks for an earlier machine.
        started = dict(locked[1] or {})
        number = started[operation] = started.get(operation, 0) + 1
        Workspace.objects.filter(pk=workspace.pk).update(attempts_started=started)
        workspace.attempts_started = started
        event = WorkspaceEvent.objects.create(
            workspace=workspace,
            kind=WorkspaceEvent.Kind.ATTEMPT,
            actor_kind=ActorKind.SYSTEM,
            operation=operation,
            attempt_number=number,
            attempt_outcome=AttemptOutcome.RUNNING,
            task_id=task_id or "",
            from_status=workspace.status,
            message=WorkspaceEvent.attempt_message(operation, number, AttemptOutcome.RUNNING),
        )
    run = Attempt(event, number)
    logger.info("%s attempt %s started", operation, number, extra={"operation": operation, "attempt": number})
    began = time.monotonic()
    outcome, error, request_id = AttemptOutcome.SUCCEEDED, "", ""
    try:
        yield run
    except DriverError as exc:
        outcome = AttemptOutcome.RETRIED if exc.transient else AttemptOutcome.FAILED
        error, request_id = exc.message, exc.request_id or ""
        raise
    except Exception as exc:
        outcome, error = AttemptOutcome.FAILED_UNEXPECTEDLY, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        duration_ms = int((time.monotonic() - began) * 1000)
        provider_request_id = (request_id or run.request_id or "")[:128]
        WorkspaceEvent.objects.filter(pk=event.pk).update(
            duration_ms=duration_ms,
            request_id=provider_request_id,
            error=error,
            attempt_outcome=outcome,
            message=WorkspaceEvent.attempt_message(operation, number, outcome),
        )
        logger.info(
            "%s attempt %s %s",
            operation,
            number,
            outcome.label,
            extra={
                "operation": operation,
                "attempt": number,
                "duration_ms": duration_ms,
                "provider_request_id": provider_request_id or None,
                "error": error or None,
            },
        )


def _stand_down(operation: str, why: str) -> None:
    logger.info("%s: %s; standing down", operation, why, extra={"operation": operation})
    raise StandDown(why)


def attempt_abandon(event: WorkspaceEvent, *, now: datetime) -> bool:
    """Close an attempt whose worker is presumed dead (the reconciler's call), so that the run it
    queues again may take over. False if the attempt ended meanwhile (it was alive after all)."""
    return bool(
        WorkspaceEvent.objects.filter(pk=event.pk, duration_ms__isnull=True).update(
            duration_ms=max(0, int((now - event.created_at).total_seconds() * 1000)),
            error="Its worker stopped before the attempt ended.",
            attempt_outcome=AttemptOutcome.ABANDONED,
            message=WorkspaceEvent.attempt_message(
                event.operation, event.attempt_number, AttemptOutcome.ABANDONED
            ),
        )
    )


def last_attempt(workspace: Workspace, operation: str) -> WorkspaceEvent | None:
    return (
        WorkspaceEvent.objects.filter(
            workspace=workspace, kind=WorkspaceEvent.Kind.ATTEMPT, operation=operation
        )
        .order_by("-created_at", "-id")
        .first()
    )
