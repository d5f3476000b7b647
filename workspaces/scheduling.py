"""The one seam between deciding that work is queued and how it is: Celery, by task name, on commit.

Services decide *that* a workspace's work runs in the background (``workspaces.services``, the
reconciler); this module knows *how*. It sends by name through the Celery app, so neither it nor
the services import ``workspaces.tasks``: the tasks (thin adapters) import the services, and the
imports point one way (tests/test_import_graph.py checks it). The task names come from the table
of operations (``workspaces.operations``, each entry's ``task``); a test checks that each is
registered.
"""

from __future__ import annotations

from django.db import transaction

from config.celery import app
from workspaces import operations


def task_names() -> set[str]:
    """The names of every operation's task: what a worker must have registered."""
    return {op.task for op in operations.all_operations()}


def send(task_name: str, workspace_id: str, *, queue: str | None = None) -> None:
    """Send a workspace's task now, to ``queue`` (the default queue if None). Raises what the
    broker raises if it cannot take the message."""
    options = {"queue": queue} if queue else {}
    app.send_task(task_name, args=(workspace_id,), **options)


def send_on_commit(task_name: str, workspace_id: str, *, queue: str | None = None) -> None:
    """Send a workspace's task once the current transaction commits (a worker must never look for
    a row that is not there yet). If the broker cannot take it then — down, restarting — the
    request still succeeds: the row is committed, the failure is logged (robust on_commit), and the
    reconciler queues the work again when it sees no progress."""

    def send_task():  # a named function: Django's robust on_commit logs failures by __qualname__
        send(task_name, workspace_id, queue=queue)

    transaction.on_commit(send_task, robust=True)
