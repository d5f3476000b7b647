"""A provisioning message delivered twice (the reconciler queued the work again behind a backlog, or
the broker redelivered): the second run stands down while the first is under way, so the workspace
gets one machine and ends ``running``. Before, the two runs side by side made two machines, or the
second took the first's volume, was refused, and destroyed everything (tests/test_many_workers.py
found it: a workspace in ``error``, "Fly reports it destroying")."""

from datetime import timedelta

import pytest
from django.utils import timezone

from workspaces import reconciler
from workspaces.attempts import StandDown, attempt
from workspaces.models import Workspace, WorkspaceEvent
from workspaces.tasks import provision_workspace

SMALL = {"hardware": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256, "volume_size_gb": 1}}


@pytest.fixture
def workspace(api, project, fly):
    """A workspace in ``creating`` whose provisioning message no worker has taken (``db``: the
    on-commit send never happens), with a run of another task already under way for it."""
    created = api.post(f"/projects/{project.id}/workspaces", SMALL)
    assert created.status_code == 201, created.content
    workspace = Workspace.objects.get(pk=created.json()["id"])
    # What a run leaves when it opens its attempt (workspaces/attempts.py) and has not ended it.
    Workspace.objects.filter(pk=workspace.pk).update(attempts_started={"provision": 1})
    WorkspaceEvent.objects.create(
        workspace=workspace,
        kind=WorkspaceEvent.Kind.ATTEMPT,
        operation="provision",
        attempt_number=1,
        attempt_outcome="running",
        task_id="first-delivery",
        from_status="creating",
        message="Provision attempt 1 started.",
    )
    return workspace


def attempts(workspace):
    return list(
        workspace.events.filter(kind="attempt")
        .order_by("id")
        .values_list("task_id", "attempt_number", "attempt_outcome")
    )


def test_a_second_run_stands_down_while_the_first_is_under_way(api, workspace, fly):
    provision_workspace.apply(args=[str(workspace.id)], task_id="second-delivery")

    assert fly.requests == []  # it asked the provider for nothing
    assert attempts(workspace) == [("first-delivery", 1, "running")]
    assert api.get(f"/workspaces/{workspace.id}").json()["status"] == "creating"


def test_the_same_message_delivered_again_after_its_worker_died_goes_on(api, workspace, fly):
    provision_workspace.apply(args=[str(workspace.id)], task_id="first-delivery")

    body = api.get(f"/workspaces/{workspace.id}").json()
    assert body["status"] == "running"
    assert [m["id"] for m in fly.inventory()["machines"]] == [body["machine_id"]]


def test_a_run_presumed_dead_is_closed_by_the_reconciler_and_the_work_taken_over(
    api, workspace, fly, settings, tasks_not_sent
):
    settings.WORKSPACE_ATTEMPT_PRESUMED_DEAD_SECONDS = 600
    settings.WORKSPACE_REQUEUE_AFTER_SECONDS = 60
    past = timezone.now() - timedelta(seconds=700)
    Workspace.objects.filter(pk=workspace.pk).update(status_changed_at=past)
    workspace.events.filter(kind="attempt").update(created_at=past)
    sent = tasks_not_sent

    reconciler.reconcile()

    assert sent == [("provision_workspace", (str(workspace.id),), None)]
    assert attempts(workspace) == [("first-delivery", 1, "abandoned")]
    provision_workspace.apply(args=sent[0][1], task_id="requeued")  # what a worker does with it
    body = api.get(f"/workspaces/{workspace.id}").json()
    assert body["status"] == "running"
    assert attempts(workspace)[1] == ("requeued", 2, "succeeded")
    timeline = api.get(f"/workspaces/{workspace.id}/events").json()
    shown = [
        (e["message"], e["attempt"]["number"], e["attempt"]["outcome"])
        for e in timeline["events"]
        if e["attempt"]
    ]
    assert shown == [
        ("Provision attempt 1 never finished.", 1, "abandoned"),
        ("Provision attempt 2 succeeded.", 2, "succeeded"),
    ]
    assert [m["id"] for m in fly.inventory()["machines"]] == [body["machine_id"]]


def test_a_run_that_died_after_moving_its_workspace_to_starting_is_closed_and_taken_over(
    api, workspace, fly, settings, tasks_not_sent
):
    """The dead run's attempt began in `creating` and the run itself moved the workspace to
    `starting`: its attempt is older than the status. The reconciler closed it only when it was
    newer, so the run it queued stood down and the workspace stayed `starting` (found by
    test_many_workers.py in CI)."""
    settings.WORKSPACE_ATTEMPT_PRESUMED_DEAD_SECONDS = 600
    settings.WORKSPACE_REQUEUE_AFTER_SECONDS = 60
    workspace.events.filter(kind="attempt").update(created_at=timezone.now() - timedelta(seconds=700))
    Workspace.objects.filter(pk=workspace.pk).update(  # within the `starting` ceiling (600 s)
        status="starting", status_changed_at=timezone.now() - timedelta(seconds=300)
    )
    sent = tasks_not_sent

    reconciler.reconcile()

    assert sent == [("provision_workspace", (str(workspace.id),), None)]
    assert attempts(workspace) == [("first-delivery", 1, "abandoned")]
    provision_workspace.apply(args=sent[0][1], task_id="requeued")
    assert api.get(f"/workspaces/{workspace.id}").json()["status"] == "running"


def test_an_open_attempt_older_than_its_status_but_alive_is_left_alone(
    workspace, fly, settings, tasks_not_sent
):
    """A live run that moved its workspace to `starting` and waits for the machine: not lost work."""
    settings.WORKSPACE_REQUEUE_AFTER_SECONDS = 60
    workspace.events.filter(kind="attempt").update(created_at=timezone.now() - timedelta(seconds=90))
    Workspace.objects.filter(pk=workspace.pk).update(
        status="starting", status_changed_at=timezone.now() - timedelta(seconds=80)
    )
    sent = tasks_not_sent

    assert reconciler.reconcile().requeued == []
    assert sent == [] and attempts(workspace) == [("first-delivery", 1, "running")]


def test_a_run_that_loaded_the_workspace_before_another_run_moved_it_on_stands_down(workspace, fly):
    workspace.events.filter(kind="attempt").update(duration_ms=100, attempt_outcome="succeeded")
    Workspace.objects.filter(pk=workspace.pk).update(status="running")  # the first run finished

    with pytest.raises(StandDown), attempt(workspace, "provision", "second-delivery"):  # loaded as creating
        pytest.fail("the second run went ahead")
    assert len(attempts(workspace)) == 1
