"""The lifecycle operations, as data: one entry per operation, read by everything that needs one.

The services (which statuses a request may start from, which task to queue), the scheduling seam
(task names), the tasks (which service each calls), the reconciler (which statuses are transient,
their ceilings, what to queue again), the admin (stuck workspaces, "queue again") and the metrics
(the ``operation`` label) all read this table. A new operation is one entry here plus its service
(and its Celery task, registered under ``task``); nothing else repeats its name.

A leaf: it imports nothing of the apps (statuses are spelled as the values of
``workspaces.models.WorkspaceStatus``; a test checks that they are), so any layer may read it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Operation:
    """One lifecycle operation.

    ``name``: what the API, the admin and error messages call it (``start``).
    ``label``: the name its background runs carry: the attempts' ``operation`` column and the
    metrics' ``operation`` label (``provision``: a start is a provisioning from ``stopped``/``error``).
    ``task``: the registered name of the Celery task that does the work.
    ``service``: the dotted path of the service function that task calls (``workspace_id``, ``task_id``).
    ``allowed_from``: the statuses a request may start it from; empty if no request starts it
    (provisioning starts with the create, destroying with the delete).
    ``runs_in``: the transient status the work runs in, also the key of its ceiling in
    ``settings.WORKSPACE_STATE_CEILINGS_SECONDS``; None for work on a deleted row (destroy).
    ``fails_to``: where the workspace goes when the work fails or times out.
    ``may_clone``: its run may clone the project's repository on this host, so it may go to the
    clone queue (``services.provision_queue``).
    """

    name: str
    label: str
    task: str
    service: str
    allowed_from: tuple[str, ...] = ()
    runs_in: str | None = None
    fails_to: str | None = None
    may_clone: bool = False


PROVISION = Operation(
    name="provision",
    label="provision",
    task="workspaces.tasks.provision_workspace",
    service="workspaces.services.workspace_provision",
    runs_in="creating",
    fails_to="error",
    may_clone=True,
)
START = Operation(
    name="start",
    label="provision",
    task="workspaces.tasks.provision_workspace",
    service="workspaces.services.workspace_provision",
    allowed_from=("stopped", "error"),
    runs_in="starting",
    fails_to="error",
    may_clone=True,
)
# Stop is also how a user retries a failed stop.
STOP = Operation(
    name="stop",
    label="stop",
    task="workspaces.tasks.stop_workspace",
    service="workspaces.services.workspace_run_stop",
    allowed_from=("running", "stop_failed"),
    runs_in="stopping",
    fails_to="stop_failed",
)
DESTROY = Operation(
    name="destroy",
    label="destroy",
    task="workspaces.tasks.destroy_workspace",
    service="workspaces.services.workspace_destroy",
)

# name -> operation. Tests may add a test-only entry (monkeypatch.setitem) to show it is picked up.
REGISTRY: dict[str, Operation] = {op.name: op for op in (PROVISION, START, STOP, DESTROY)}


def get(name: str) -> Operation:
    """The operation called ``name``; KeyError if there is none."""
    return REGISTRY[name]


def all_operations() -> Iterator[Operation]:
    return iter(list(REGISTRY.values()))


def running_in(status: str) -> Operation | None:
    """The operation whose work runs while a workspace is ``status``, or None (not transient)."""
    return next((op for op in REGISTRY.values() if op.runs_in == status), None)


def transient_statuses() -> list[str]:
    """The statuses some operation's work runs in: none may last past its ceiling."""
    return [op.runs_in for op in REGISTRY.values() if op.runs_in is not None]


def pending(*, status: str, deleted: bool) -> Operation | None:
    """The operation a workspace waits on: destroy once deleted, else the one its status runs."""
    return REGISTRY[DESTROY.name] if deleted else running_in(status)


def labels() -> list[str]:
    """Every ``label`` once, in the table's order: the attempts' and the metrics' ``operation``."""
    return list(dict.fromkeys(op.label for op in REGISTRY.values()))


def tasks() -> dict[str, str]:
    """label -> task name, for the work each label names."""
    return {op.label: op.task for op in REGISTRY.values()}
