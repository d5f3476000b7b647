"""Attempts written before their number and outcome had columns: the migration reads their
sentences once and fills the columns, and the workspace's count of started runs, so that metrics,
the API and the next run's number carry on from what the timeline said."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("workspaces", "0003_attempts")]
AFTER = [("workspaces", "0004_attempt_columns")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_old_attempt_sentences_become_columns(user, project):
    apps = migrate(BEFORE)
    try:
        Workspace = apps.get_model("workspaces", "Workspace")
        Event = apps.get_model("workspaces", "WorkspaceEvent")
        workspace = Workspace.objects.create(
            project_id=project.pk,
            created_by_id=user.pk,
            status="running",
            cpu_kind="shared",
            cpus=1,
            memory_mb=256,
            volume_size_gb=1,
            driver="fly",
        )
        sentences = [
            ("provision", "Provision attempt 1 failed; it will be retried.", 10),
            ("provision", "Provision attempt 2 never finished.", 20),
            ("provision", "Provision attempt 3 succeeded.", 30),
            ("stop", "Stop attempt 1 failed unexpectedly.", 40),
            ("stop", "Stop attempt 2 failed.", 50),
            ("destroy", "Destroy attempt 1 started.", None),
            ("destroy", "Destroy attempt never finished.", 60),  # abandoned before the number was kept
        ]
        for operation, message, duration_ms in sentences:
            Event.objects.create(
                workspace=workspace,
                kind="attempt",
                operation=operation,
                message=message,
                duration_ms=duration_ms,
            )
        Event.objects.create(workspace=workspace, kind="info", message="Provision attempt 9 succeeded.")

        apps = migrate(AFTER)
        Workspace = apps.get_model("workspaces", "Workspace")
        Event = apps.get_model("workspaces", "WorkspaceEvent")
        rows = list(
            Event.objects.filter(workspace_id=workspace.pk)
            .order_by("id")
            .values_list("kind", "attempt_number", "attempt_outcome")
        )
        assert rows == [
            ("attempt", 1, "retried"),
            ("attempt", 2, "abandoned"),
            ("attempt", 3, "succeeded"),
            ("attempt", 1, "failed_unexpectedly"),
            ("attempt", 2, "failed"),
            ("attempt", 1, "running"),
            ("attempt", 2, "abandoned"),
            ("info", None, None),  # not an attempt: its words are left alone
        ]
        started = Workspace.objects.get(pk=workspace.pk).attempts_started
        assert started == {"provision": 3, "stop": 2, "destroy": 2}
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
