"""Idle auto-stop (docs/api.md, "The workspace lifecycle"): activity, and stopping what has had
none for too long.

A running workspace with ``keep_active: false`` is stopped once it has been idle for
``WORKSPACE_IDLE_TIMEOUT_SECONDS``. Activity is ``Workspace.last_activity_at``, moved by:

* a heartbeat from the workspace's machine (``POST /workspaces/{id}/heartbeat`` with its agent
  token, ``workspace_heartbeat`` below); the machine decides what counts as activity on it (for the
  local driver, see ``workspaces.drivers.local_agent``);
* start, stop and patch (``workspace_start``, ``workspace_stop``, ``workspace_update``).

Reads are not activity: a dashboard polling ``GET /workspaces/{id}`` must not keep a forgotten
workspace running. A workspace is also never stopped less than the timeout after it became
``running``: its ``last_activity_at`` may be older than a slow provisioning.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from config.operations.logs import each_logged
from config.values import duration_text
from workspaces.models import Workspace, WorkspaceStatus
from workspaces.services import SYSTEM, InvalidState, workspace_stop

logger = logging.getLogger(__name__)


def workspace_heartbeat(*, workspace_id: uuid.UUID) -> bool:
    """Record activity on a live workspace, whatever its status; False if there is no such workspace.

    One UPDATE of ``last_activity_at`` only: no event (there would be one every few seconds) and no
    ``updated_at`` change (nothing a user sees has changed).
    """
    return bool(Workspace.live.filter(pk=workspace_id).update(last_activity_at=timezone.now()))


def idle_reason(timeout_seconds: float) -> str:
    """What the timeline says about an idle stop."""
    return f"Stopped after {duration_text(timeout_seconds)} without activity."


def workspaces_stop_idle(*, now: datetime | None = None) -> int:
    """Stop every live, running, ``keep_active: false`` workspace idle for longer than the timeout,
    as the system, with the reason on its timeline. Returns how many were stopped.

    One query selects them; the ``(status, status_changed_at)`` index serves it. Each stop is
    ``workspace_stop``'s conditional transition, so a workspace that a user stopped or deleted
    meanwhile is skipped, and a second run at the same time stops nothing twice.
    """
    now = now or timezone.now()
    timeout = settings.WORKSPACE_IDLE_TIMEOUT_SECONDS
    cutoff = now - timedelta(seconds=timeout)
    idle = Workspace.live.filter(
        status=WorkspaceStatus.RUNNING,
        status_changed_at__lt=cutoff,  # running for longer than the timeout...
        last_activity_at__lt=cutoff,  # ...and no activity for as long
        keep_active=False,
    ).order_by("last_activity_at", "id")
    reason = idle_reason(timeout)
    stopped = 0
    for workspace in each_logged(list(idle)):
        try:
            workspace_stop(workspace=workspace, actor=SYSTEM, reason=reason, only_if_idle_since=cutoff)
        except InvalidState:
            logger.info("idle stop: workspace %s changed meanwhile; skipped", workspace.id)
            continue
        stopped += 1
    if stopped:
        logger.info("idle stop: stopped %d workspace(s) idle for more than %g s", stopped, timeout)
    return stopped
