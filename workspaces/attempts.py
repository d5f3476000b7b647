"""Attempts: one timeline row per run of a task on a workspace (provision, stop, destroy).

The row is written when the run starts and completed when it ends, with its duration, its outcome,
the provider's error in words and the provider's request id. A run whose worker died keeps an open
row (no duration): the reconciler reads that as "picked up, then lost" and queues the work again.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

from workspaces.drivers import DriverError
from workspaces.models import ActorKind, Workspace, WorkspaceEvent

logger = logging.getLogger(__name__)


class Attempt:
    """The open row of a run; ``request_id`` may be set by the run as answers come in."""

    def __init__(self, event: WorkspaceEvent):
        self.event = event
        self.request_id = ""


@contextmanager
def attempt(workspace: Workspace, operation: str, task_id: str):
    number = (
        WorkspaceEvent.objects.filter(
            workspace=workspace, kind=WorkspaceEvent.Kind.ATTEMPT, operation=operation
        ).count()
        + 1
    )
    event = WorkspaceEvent.objects.create(
        workspace=workspace,
        kind=WorkspaceEvent.Kind.ATTEMPT,
        actor_kind=ActorKind.SYSTEM,
        operation=operation,
        task_id=task_id or "",
        from_status=workspace.status,
        message=f"{operation.capitalize()} attempt {number} started.",
    )
    run = Attempt(event)
    logger.info("%s attempt %s started", operation, number, extra={"operation": operation, "attempt": number})
    started = time.monotonic()
    outcome, error, request_id = "succeeded", "", ""
    try:
        yield run
    except DriverError as exc:
        outcome = "failed; it will be retried" if exc.transient else "failed"
        error, request_id = exc.message, exc.request_id or ""
        raise
    except Exception as exc:
        outcome, error = "failed unexpectedly", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        duration_ms = int((time.monotonic() - started) * 1000)
        provider_request_id = (request_id or run.request_id or "")[:128]
        WorkspaceEvent.objects.filter(pk=event.pk).update(
            duration_ms=duration_ms,
            request_id=provider_request_id,
            error=error,
            message=f"{operation.capitalize()} attempt {number} {outcome}.",
        )
        logger.info(
            "%s attempt %s %s",
            operation,
            number,
            outcome,
            extra={
                "operation": operation,
                "attempt": number,
                "duration_ms": duration_ms,
                "provider_request_id": provider_request_id or None,
                "error": error or None,
            },
        )


def last_attempt(workspace: Workspace, operation: str) -> WorkspaceEvent | None:
    return (
        WorkspaceEvent.objects.filter(
            workspace=workspace, kind=WorkspaceEvent.Kind.ATTEMPT, operation=operation
        )
        .order_by("-created_at", "-id")
        .first()
    )
