"""Celery tasks: thin adapters that take an id and call a service."""

from celery import shared_task
from celery.utils.time import get_exponential_backoff_interval

from workspaces import services
from workspaces.drivers import DriverError

PROVISION_MAX_RETRIES = 6


@shared_task(bind=True, acks_late=True, max_retries=PROVISION_MAX_RETRIES)
def provision_workspace(self, workspace_id: str) -> None:
    """Provision one workspace. Safe to run twice: the service resumes, and its transitions are
    conditional. Only transient provider errors reach here; they are retried with capped, jittered
    backoff, and past ``max_retries`` the workspace goes to ``error``."""
    try:
        services.workspace_provision(workspace_id=workspace_id, task_id=self.request.id or "")
    except DriverError as exc:
        if self.request.retries >= self.max_retries:
            services.workspace_provision_gave_up(
                workspace_id=workspace_id, message=exc.message, task_id=self.request.id or ""
            )
            return
        countdown = get_exponential_backoff_interval(
            factor=2, retries=self.request.retries, maximum=60, full_jitter=True
        )
        raise self.retry(exc=exc, countdown=countdown) from exc
