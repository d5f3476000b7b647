"""The reconciler: stuck states time out, lost work is queued again, the inventory is kept honest."""

import os
import signal
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from config.celery import app as celery_app
from tests.factories import ProjectFactory, WorkspaceFactory
from workspaces import reconciler
from workspaces.drivers import MachineSpec
from workspaces.hardware import Hardware
from workspaces.models import Workspace, WorkspaceEvent, WorkspaceStatus
from workspaces.services import _machine_spec, workspace_provision

S = WorkspaceStatus
HOUR = timedelta(hours=1)


@pytest.fixture
def make_workspace(user, local_machines):
    def make(status=S.CREATING, *, age=timedelta(0), project=None, **fields):
        return WorkspaceFactory(
            project=project or ProjectFactory(owner=user),
            status=status,
            status_changed_at=timezone.now() - age,
            **{"memory_mb": 256, **fields},
        )

    return make


def notes(workspace):
    return [e.message for e in workspace.events.filter(kind__in=["info", "error"])]


# --- ceilings -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "ceiling", "ends", "says"),
    [
        (S.CREATING, 900, S.ERROR, "Timed out: still 'creating' after 15 minutes."),
        (S.STARTING, 600, S.ERROR, "Timed out: still 'starting' after 10 minutes."),
        (S.STOPPING, 300, S.STOP_FAILED, "Timed out: still 'stopping' after 5 minutes."),
    ],
)
@pytest.mark.django_db
def test_a_state_past_its_ceiling_ends_with_what_timed_out(make_workspace, status, ceiling, ends, says):
    on_time = make_workspace(status, age=timedelta(seconds=ceiling - 5))
    stuck = make_workspace(status, age=timedelta(seconds=ceiling + 5))
    report = reconciler.reconcile()
    assert report.timed_out == [str(stuck.id)]
    stuck.refresh_from_db()
    on_time.refresh_from_db()
    assert stuck.status == ends
    assert says in stuck.error_message
    assert on_time.status == status


@pytest.mark.django_db
def test_a_timed_out_create_leaves_nothing_at_the_provider(make_workspace, local_machines):
    stuck = make_workspace(S.CREATING, age=HOUR)
    local_machines.create(_machine_spec(stuck))  # a worker made it, then went quiet
    reconciler.reconcile()
    stuck.refresh_from_db()
    assert stuck.status == S.ERROR
    assert local_machines.find(str(stuck.id)) is None
    assert "nothing was kept" in stuck.error_message


# --- lost work --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_work_no_worker_took_is_queued_again_once_quiet_long_enough(make_workspace, tasks_not_sent):
    fresh = make_workspace(S.CREATING, age=timedelta(seconds=30))
    lost = make_workspace(S.CREATING, age=timedelta(seconds=300))
    report = reconciler.reconcile()
    assert tasks_not_sent == [("provision_workspace", (str(lost.id),), None)]
    assert report.requeued == [str(lost.id)]
    assert any("no worker took the provision" in note for note in notes(lost))
    assert notes(fresh) == []


@pytest.mark.django_db
def test_lost_provisioning_that_would_clone_is_queued_again_on_the_clone_queue(
    make_workspace, user, tasks_not_sent
):
    with_repo = ProjectFactory(owner=user, repo_url="https://git.example.com/org/repo.git")
    quiet = {"age": timedelta(seconds=300)}
    cloning = make_workspace(S.CREATING, project=with_repo, **quiet)
    no_repo = make_workspace(S.CREATING, **quiet)
    # Ran before and is being started again: its machine and volume exist, nothing is cloned.
    restarting = make_workspace(S.STARTING, project=with_repo, provisioned_at=timezone.now() - HOUR, **quiet)

    reconciler.reconcile()

    sent = [(args[0], queue) for name, args, queue in tasks_not_sent if name == "provision_workspace"]
    assert sorted(sent, key=str) == sorted(
        [
            (str(cloning.id), settings.WORKSPACE_CLONE_QUEUE),
            (str(no_repo.id), None),
            (str(restarting.id), None),
        ],
        key=str,
    )


@pytest.mark.django_db
def test_an_attempt_that_never_finished_means_its_worker_died(make_workspace, tasks_not_sent, settings):
    settings.WORKSPACE_ATTEMPT_PRESUMED_DEAD_SECONDS = 600
    running = make_workspace(S.CREATING, age=HOUR)
    dead = make_workspace(S.CREATING, age=HOUR)
    WorkspaceEvent.objects.create(
        workspace=running,
        kind="attempt",
        operation="provision",
        created_at=timezone.now() - timedelta(seconds=60),
    )
    WorkspaceEvent.objects.create(
        workspace=dead,
        kind="attempt",
        operation="provision",
        created_at=timezone.now() - timedelta(seconds=700),
    )
    settings.WORKSPACE_STATE_CEILINGS_SECONDS = {"creating": 10 * 3600, "starting": 600, "stopping": 300}
    reconciler.reconcile()
    assert tasks_not_sent == [("provision_workspace", (str(dead.id),), None)]
    assert any("never finished (its worker died)" in note for note in notes(dead))


@pytest.mark.django_db
def test_a_retry_that_never_came_is_queued_again(make_workspace, tasks_not_sent, settings):
    waiting = make_workspace(S.STOPPING, age=timedelta(seconds=200), machine_id="m1")
    forgotten = make_workspace(S.STOPPING, age=timedelta(seconds=200), machine_id="m2")
    settings.WORKSPACE_STATE_CEILINGS_SECONDS = {"creating": 900, "starting": 600, "stopping": 3600}
    WorkspaceEvent.objects.create(
        workspace=waiting,
        kind="attempt",
        operation="stop",
        duration_ms=100,
        created_at=timezone.now() - timedelta(seconds=30),
    )
    WorkspaceEvent.objects.create(
        workspace=forgotten,
        kind="attempt",
        operation="stop",
        duration_ms=100,
        created_at=timezone.now() - timedelta(seconds=190),
    )
    reconciler.reconcile()
    assert tasks_not_sent == [("stop_workspace", (str(forgotten.id),), None)]


@pytest.mark.django_db
def test_a_deleted_workspace_not_yet_destroyed_is_destroyed_again(make_workspace, tasks_not_sent):
    gone = make_workspace(S.RUNNING, deleted_at=timezone.now() - HOUR)
    make_workspace(S.RUNNING, deleted_at=timezone.now() - HOUR, destroyed_at=timezone.now())  # done
    reconciler.reconcile()
    assert tasks_not_sent == [("destroy_workspace", (str(gone.id),), None)]  # only the undestroyed one


@pytest.mark.worker
def test_a_message_dropped_after_commit_still_ends_running(worker, api, project, monkeypatch, settings):
    """The create commits, but its message never reaches the broker (here the broker refuses it; the
    process dying right after its commit is the same). The request still succeeds, and the
    reconciler notices the quiet workspace and queues it again."""
    from kombu.exceptions import OperationalError

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(celery_app, "send_task", broker_down)
    response = api.post(f"/projects/{project.id}/workspaces", {"hardware": {"cpus": 1, "memory_mb": 256}})
    assert response.status_code == 201
    workspace_id = response.json()["id"]
    monkeypatch.undo()  # the broker is back
    time.sleep(1)
    assert Workspace.objects.get(pk=workspace_id).status == S.CREATING  # nobody took it
    settings.WORKSPACE_REQUEUE_AFTER_SECONDS = 0
    assert reconciler.reconcile().requeued == [workspace_id]
    deadline = time.monotonic() + 60
    while Workspace.objects.get(pk=workspace_id).status != S.RUNNING and time.monotonic() < deadline:
        time.sleep(0.1)
    workspace = Workspace.objects.get(pk=workspace_id)
    assert workspace.status == S.RUNNING
    assert len([m for m in worker_machines(settings) if m == workspace_id]) == 1


def worker_machines(settings):
    return [p.name for p in (settings.LOCAL_DRIVER_ROOT / "machines").iterdir() if p.is_dir()]


# --- inventory ---------------------------------------------------------------------------------------------


def spec(workspace_id):
    return MachineSpec(workspace_id=workspace_id, hardware=Hardware("shared", 1, 256, 1))


@pytest.mark.django_db
def test_orphans_are_destroyed_and_the_decision_is_on_the_timeline(make_workspace, local_machines):
    unknown = str(uuid.uuid4())
    local_machines.create(spec(unknown))
    deleted = make_workspace(S.RUNNING, deleted_at=timezone.now(), destroyed_at=timezone.now())
    local_machines.create(spec(str(deleted.id)))
    failed = make_workspace(S.ERROR)
    local_machines.create(spec(str(failed.id)))
    fine = make_workspace(S.CREATING)
    local_machines.create(spec(str(fine.id)))  # being provisioned right now: not an orphan

    report = reconciler.reconcile()

    assert set(report.orphans_destroyed) == {unknown, str(deleted.id), str(failed.id)}
    assert [m.workspace_id for m in local_machines.list_machines()] == [str(fine.id)]
    assert any("its workspace was deleted" in note for note in notes(deleted))
    assert any("failed before it ever ran" in note for note in notes(failed))


@pytest.mark.django_db
def test_a_running_workspace_whose_machine_vanished_goes_to_error(make_workspace, local_machines):
    workspace = make_workspace(S.CREATING)
    workspace_provision(workspace_id=str(workspace.id))
    workspace.refresh_from_db()
    assert workspace.status == S.RUNNING
    local_machines.destroy(str(workspace.id))  # behind our back
    assert reconciler.reconcile().vanished == [str(workspace.id)]
    workspace.refresh_from_db()
    assert workspace.status == S.ERROR
    assert "vanished" in workspace.error_message


@pytest.mark.django_db
def test_a_running_workspace_whose_process_died_goes_to_error_and_can_start_again(
    make_workspace, local_machines
):
    workspace = make_workspace(S.CREATING)
    workspace_provision(workspace_id=str(workspace.id))
    record = (settings.LOCAL_DRIVER_ROOT / "machines" / str(workspace.id) / "agent.pid").read_text()
    os.kill(int(record), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while local_machines.find(str(workspace.id)).state != "failed" and time.monotonic() < deadline:
        time.sleep(0.05)
    reconciler.reconcile()
    workspace.refresh_from_db()
    assert workspace.status == S.ERROR
    assert "stopped unexpectedly" in workspace.error_message
    # the volume was kept: a start boots the same machine again
    from workspaces.services import SYSTEM, workspace_start

    workspace_start(workspace=workspace, actor=SYSTEM)
    workspace_provision(workspace_id=str(workspace.id))
    workspace.refresh_from_db()
    assert workspace.status == S.RUNNING


@pytest.mark.django_db
def test_two_passes_never_overlap(make_workspace):
    from django.core.cache import cache

    cache.add(reconciler.LOCK_KEY, "1", timeout=60)
    try:
        assert reconciler.reconcile().skipped
    finally:
        cache.delete(reconciler.LOCK_KEY)


def test_the_reconciler_is_on_the_beat_schedule():
    entry = settings.CELERY_BEAT_SCHEDULE["reconcile-workspaces"]
    assert entry["task"] == "workspaces.tasks.reconcile_workspaces"
