"""The lifecycle operations are data (workspaces/operations.py): every consumer reads the table.

A test-only "restart" is registered as one entry, and nothing else: the reconciler times it out at
its ceiling and queues its lost work again (to its own task), the admin counts it stuck, the metrics
label it, and the scheduling seam and the test's broker stand-in know its task, without any of them
naming it.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import user_create
from config.celery import app as celery_app
from tests.factories import ProjectFactory, WorkspaceFactory
from workspaces import operations, reconciler, scheduling
from workspaces.models import WorkspaceStatus

pytestmark = pytest.mark.django_db

RESTART = operations.Operation(
    name="restart",
    label="restart",
    task="workspaces.tasks.restart_workspace",  # never registered: the test's broker stand-in takes it
    service="workspaces.services.workspace_provision",
    allowed_from=("running",),
    runs_in="restarting",
    fails_to="error",
)
METRICS_TOKEN = "metrics-" + "r" * 32


@pytest.fixture
def restart(monkeypatch):
    monkeypatch.setitem(operations.REGISTRY, RESTART.name, RESTART)
    return RESTART


@pytest.fixture
def restarting(user, local_machines):
    def make(age):
        return WorkspaceFactory(
            project=ProjectFactory(owner=user),
            status="restarting",
            status_changed_at=timezone.now() - age,
            provisioned_at=timezone.now() - timedelta(days=1),
            memory_mb=256,
        )

    return make


def test_lost_work_of_a_new_operation_is_queued_again_to_its_own_task(restart, restarting, tasks_not_sent):
    lost = restarting(timedelta(seconds=300))
    report = reconciler.reconcile()
    assert report.requeued == [str(lost.id)]
    assert tasks_not_sent == [("restart_workspace", (str(lost.id),), None)]
    assert lost.events.filter(message__contains="queued the restart again").exists()
    assert RESTART.task in scheduling.task_names()


def test_a_new_operation_times_out_at_its_ceiling_into_its_failure(restart, restarting, settings):
    settings.WORKSPACE_STATE_CEILINGS_SECONDS = {
        **settings.WORKSPACE_STATE_CEILINGS_SECONDS,
        "restarting": 60,
    }
    stuck = restarting(timedelta(hours=1))
    report = reconciler.reconcile()
    assert report.timed_out == [str(stuck.id)]
    stuck.refresh_from_db()
    assert stuck.status == RESTART.fails_to
    assert "Timed out: still 'restarting' after 1 minute." in stuck.error_message


def test_the_admin_counts_a_new_operation_past_its_ceiling_as_stuck(restart, restarting, settings, client):
    settings.WORKSPACE_STATE_CEILINGS_SECONDS = {
        **settings.WORKSPACE_STATE_CEILINGS_SECONDS,
        "restarting": 60,
    }
    stuck = restarting(timedelta(hours=1))
    on_time = restarting(timedelta(seconds=5))
    client.force_login(
        user_create(email="oncall@example.com", password="s3cret-pass-word", is_staff=True, is_superuser=True)
    )
    page = client.get("/admin/workspaces/workspace/?stuck=yes").content.decode()
    assert str(stuck.id) in page and str(on_time.id) not in page


def test_the_metrics_label_a_new_operation_even_before_it_ran(restart, settings, anonymous):
    settings.METRICS_TOKEN = METRICS_TOKEN
    response = anonymous.get("/metrics", headers={"HTTP_AUTHORIZATION": f"Bearer {METRICS_TOKEN}"})
    text = response.content.decode()
    assert 'workspace_attempts_running{operation="restart"} 0.0' in text
    assert 'workspace_task_failures_total{operation="restart"} 0.0' in text


def test_every_entry_names_a_registered_task_a_service_and_real_statuses():
    """The table is what the code runs: its tasks are Celery's, its services exist, its statuses
    are the model's (the table spells them as text, to stay a leaf)."""
    from django.utils.module_loading import import_string

    from workspaces import tasks  # noqa: F401 (registers them with the Celery app, as a worker does)

    statuses = set(WorkspaceStatus.values)
    for operation in operations.all_operations():
        assert operation.task in celery_app.tasks, operation
        assert callable(import_string(operation.service)), operation
        assert set(operation.allowed_from) <= statuses, operation
        assert {operation.runs_in, operation.fails_to} - {None} <= statuses, operation
    assert operations.labels() == ["provision", "stop", "destroy"]


@pytest.mark.parametrize(
    ("status", "ends"),
    [
        (WorkspaceStatus.CREATING, WorkspaceStatus.ERROR),
        (WorkspaceStatus.STARTING, WorkspaceStatus.ERROR),
        (WorkspaceStatus.STOPPING, WorkspaceStatus.STOP_FAILED),
        (WorkspaceStatus.RUNNING, WorkspaceStatus.RUNNING),  # no work runs in it: nothing to give up
    ],
)
def test_a_task_out_of_retries_ends_in_its_operations_failure(user, local_machines, status, ends):
    from workspaces.services import workspace_gave_up

    workspace = WorkspaceFactory(
        project=ProjectFactory(owner=user), status=status, provisioned_at=timezone.now(), memory_mb=256
    )
    workspace_gave_up(workspace_id=str(workspace.id), message="503 from the provider", task_id="t-1")
    workspace.refresh_from_db()
    assert workspace.status == ends
    if ends != status:
        assert "Gave up after repeated provider errors: 503 from the provider" in workspace.error_message
