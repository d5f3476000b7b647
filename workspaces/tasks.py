"""Celery tasks: thin adapters that take an id and call a service.

The imports point one way: tasks import services (the reconciler and idle auto-stop are services
too); services queue these tasks by name through ``workspaces.scheduling``, never importing this
module. Renaming a task means changing its name there too (a test checks that they match).

Each is safe to run twice (the services resume from the row and their transitions are conditional).
Only transient provider errors reach the retry below; they are retried with capped, jittered
exponential backoff, and past ``max_retries`` the workspace goes to the failure of its state.
"""

import random

from celery import shared_task
from django.conf import settings
from django.utils.module_loading import import_string

from workspaces import idle, operations, reconciler, services
from workspaces.attempts import StandDown
from workspaces.drivers import DriverError

MAX_RETRIES = settings.WORKSPACE_TASK_MAX_RETRIES


def backoff(retries: int) -> float:
    """Full-jitter exponential backoff (2, 4, 8, ... s, capped): retries spread out instead of
    hitting a struggling provider together. Seconds may be fractional."""
    cap = min(settings.WORKSPACE_RETRY_BACKOFF_MAX_SECONDS, 2.0 * 2**retries)
    return random.uniform(0, cap)  # noqa: S311 (jitter, not a secret)


def _run(task, operation: operations.Operation, workspace_id: str) -> None:
    """Run ``operation``'s service (its table entry's ``service``) for the workspace."""
    task_id = task.request.id or ""
    service = import_string(operation.service)
    try:
        service(workspace_id=workspace_id, task_id=task_id)
    except StandDown:
        return  # a duplicate message: the run under way (or done) does the work
    except DriverError as exc:
        if task.request.retries >= task.max_retries:
            services.workspace_gave_up(workspace_id=workspace_id, message=exc.message, task_id=task_id)
            return
        countdown = backoff(task.request.retries)
        raise task.retry(exc=exc, countdown=countdown) from exc


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def provision_workspace(self, workspace_id: str) -> None:
    """Create (or start) a workspace's machine and take it to ``running``."""
    _run(self, operations.PROVISION, workspace_id)


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def stop_workspace(self, workspace_id: str) -> None:
    _run(self, operations.STOP, workspace_id)


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES)
def destroy_workspace(self, workspace_id: str) -> None:
    _run(self, operations.DESTROY, workspace_id)


@shared_task
def stop_idle_workspaces() -> int:
    """Periodic (``CELERY_BEAT_SCHEDULE``): stop running workspaces idle past the timeout. It looks
    at rows, not messages, so a skipped or doubled run does no harm."""
    return idle.workspaces_stop_idle()


@shared_task(acks_late=True)
def reconcile_workspaces() -> None:
    """The periodic reconciler (workspaces/reconciler.py)."""
    reconciler.reconcile()
