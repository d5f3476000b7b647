"""From POST to `running` (or `error`) through a real Celery worker and the local driver."""

import json
import subprocess
import time
import urllib.request

import pytest
from django.conf import settings
from django.test import override_settings

from tests.conftest import wait_for
from tests.factories import ProjectFactory
from workspaces.models import ActorKind, Workspace, WorkspaceStatus
from workspaces.services import workspace_provision


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repository(tmp_path):
    """A real git repository with one commit on `main` and one on `feature`."""
    repo = tmp_path / "source"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    git("config", "user.email", "t@example.com", cwd=repo)
    git("config", "user.name", "Test", cwd=repo)
    (repo / "README.md").write_text("hello from main\n")
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "first", cwd=repo)
    git("checkout", "-q", "-b", "feature", cwd=repo)
    (repo / "FEATURE.md").write_text("feature work\n")
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "feature", cwd=repo)
    git("checkout", "-q", "main", cwd=repo)
    return repo


def health(private_ip):
    url = f"http://{private_ip}:{settings.LOCAL_DRIVER_AGENT_PORT}/health"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback, our own agent)
        return json.loads(response.read())


@pytest.mark.worker
@override_settings(PROJECT_REPO_URL_SCHEMES=["https", "file"])
def test_a_worker_takes_a_workspace_to_running_on_a_live_process(worker, api, repository, local_machines):
    project = api.post("/projects", {"name": "app", "repo_url": f"file://{repository}"}).json()
    created = api.post(f"/projects/{project['id']}/workspaces", {"hardware": {"cpus": 1, "memory_mb": 512}})
    assert created.status_code == 201
    assert created.json()["status"] == "creating"

    body = wait_for(api, created.json()["id"])

    assert body["status"] == "running", body
    assert body["error_message"] is None
    assert body["machine_id"]
    assert body["private_ip"].startswith("127.")
    assert body["git_ref"] == git("rev-parse", "main", cwd=repository)
    answer = health(body["private_ip"])
    assert answer["status"] == "ok"
    assert answer["workspace_id"] == body["id"]
    statuses = [e.to_status for e in Workspace.objects.get(pk=body["id"]).events.filter(kind="status")]
    assert statuses == ["creating", "starting", "running"]


@pytest.mark.worker
@override_settings(PROJECT_REPO_URL_SCHEMES=["https", "file"])
def test_two_workspaces_get_their_own_address_and_the_projects_branch(
    worker, api, repository, local_machines
):
    project = api.post(
        "/projects", {"name": "app", "repo_url": f"file://{repository}", "default_branch": "feature"}
    ).json()
    ids = [api.post(f"/projects/{project['id']}/workspaces").json()["id"] for _ in range(2)]
    first, second = (wait_for(api, workspace_id) for workspace_id in ids)
    assert first["status"] == second["status"] == "running", (first, second)
    assert first["private_ip"] != second["private_ip"]
    assert first["machine_id"] != second["machine_id"]
    assert first["git_ref"] == second["git_ref"] == git("rev-parse", "feature", cwd=repository)
    assert health(first["private_ip"])["workspace_id"] == first["id"]
    assert health(second["private_ip"])["workspace_id"] == second["id"]


@pytest.mark.worker
@override_settings(PROJECT_REPO_URL_SCHEMES=["https", "file"])
def test_a_failing_provision_ends_in_error_with_a_reason_and_nothing_left(
    worker, api, tmp_path, local_machines
):
    project = api.post("/projects", {"name": "broken", "repo_url": f"file://{tmp_path}/no-such-repo"}).json()
    workspace_id = api.post(f"/projects/{project['id']}/workspaces").json()["id"]

    body = wait_for(api, workspace_id)

    assert body["status"] == "error"
    assert "Could not clone" in body["error_message"]
    assert "no-such-repo" in body["error_message"]
    assert body["machine_id"] is None and body["private_ip"] is None
    assert local_machines.find(workspace_id) is None
    assert local_machines.list_machines() == []
    assert not (settings.LOCAL_DRIVER_ROOT / "volumes" / workspace_id).exists()


# --- the service itself: resumable, adoptable, conditional -----------------------------------------


@pytest.fixture
def creating_workspace(user, local_machines):
    project = ProjectFactory(owner=user)
    return Workspace.objects.create(
        project=project,
        created_by=user,
        driver="local",
        cpu_kind="shared",
        cpus=1,
        memory_mb=256,
        volume_size_gb=1,
    )


def test_a_duplicated_task_does_nothing_the_second_time(creating_workspace, local_machines):
    workspace_provision(workspace_id=str(creating_workspace.id))
    workspace_provision(workspace_id=str(creating_workspace.id))
    creating_workspace.refresh_from_db()
    assert creating_workspace.status == WorkspaceStatus.RUNNING
    assert len(local_machines.list_machines()) == 1
    assert creating_workspace.events.filter(to_status="running").count() == 1


def test_a_machine_left_by_an_interrupted_attempt_is_adopted_not_duplicated(
    creating_workspace, local_machines
):
    from workspaces.services import _machine_spec

    earlier = local_machines.create(_machine_spec(creating_workspace))  # the worker died right after this
    workspace_provision(workspace_id=str(creating_workspace.id))
    creating_workspace.refresh_from_db()
    assert creating_workspace.status == WorkspaceStatus.RUNNING
    assert creating_workspace.machine_id == earlier.machine_id
    assert len(local_machines.list_machines()) == 1


def test_a_workspace_that_moved_on_is_not_provisioned(creating_workspace, local_machines):
    Workspace.objects.filter(pk=creating_workspace.pk).update(
        status=WorkspaceStatus.ERROR, error_message="by hand"
    )
    workspace_provision(workspace_id=str(creating_workspace.id))
    creating_workspace.refresh_from_db()
    assert (creating_workspace.status, creating_workspace.error_message) == ("error", "by hand")
    assert local_machines.list_machines() == []


@pytest.mark.parametrize("fail", ["force_error", "reconciler_ceiling"])
def test_failing_a_stale_row_of_a_workspace_that_became_running_destroys_nothing(
    creating_workspace, local_machines, fail
):
    """An operator's "Force to error" (or the reconciler's ceiling) acting on
    a row loaded while the workspace was still provisioning, after provisioning took it to running,
    loses the transition and must leave the running workspace's machine and volume alone."""
    from workspaces.services import Actor, InvalidState, workspace_fail, workspace_force_error

    Workspace.objects.filter(pk=creating_workspace.pk).update(status=WorkspaceStatus.STARTING)
    stale = Workspace.objects.get(pk=creating_workspace.pk)  # loaded while 'starting', never provisioned
    workspace_provision(workspace_id=str(stale.id))  # meanwhile, provisioning takes it to running

    if fail == "force_error":
        with pytest.raises(InvalidState):
            workspace_force_error(workspace=stale, actor=Actor(ActorKind.OPERATOR), reason="wedged")
    else:
        assert workspace_fail(workspace=stale, message="Timed out: still 'starting'.") is False

    current = Workspace.objects.get(pk=stale.pk)
    assert current.status == WorkspaceStatus.RUNNING and current.machine_id
    machine = local_machines.find(str(stale.id))
    assert machine is not None and machine.machine_id == current.machine_id
    assert (settings.LOCAL_DRIVER_ROOT / "volumes" / str(stale.id)).exists()


def test_a_missing_workspace_is_ignored(db):
    workspace_provision(workspace_id="00000000-0000-0000-0000-000000000000")


def process_answers(private_ip):
    try:
        health(private_ip)
        return True
    except OSError:
        return False


@pytest.mark.worker
def test_stop_start_and_delete_through_a_real_worker(worker, api, project, local_machines):
    workspace_id = api.post(
        f"/projects/{project.id}/workspaces", {"hardware": {"cpus": 1, "memory_mb": 256}}
    ).json()["id"]
    running = wait_for(api, workspace_id)
    assert running["status"] == "running", running
    volume = settings.LOCAL_DRIVER_ROOT / "volumes" / workspace_id
    (volume / "work.txt").write_text("unsaved work")

    assert api.post(f"/workspaces/{workspace_id}/stop").json() == {"status": "stopping"}
    stopped = wait_for(api, workspace_id, statuses={"stopped", "stop_failed"})
    assert stopped["status"] == "stopped", stopped
    assert not process_answers(running["private_ip"])
    assert (volume / "work.txt").read_text() == "unsaved work"  # the volume survives a stop

    assert api.post(f"/workspaces/{workspace_id}/start").json() == {"status": "starting"}
    again = wait_for(api, workspace_id)
    assert again["status"] == "running", again
    assert again["machine_id"] == running["machine_id"]
    assert process_answers(again["private_ip"])
    assert (volume / "work.txt").read_text() == "unsaved work"

    events = api.get(f"/workspaces/{workspace_id}/events").json()["events"]
    assert [e["to_status"] for e in events if e["type"] == "status"] == [
        "creating",
        "starting",
        "running",
        "stopping",
        "stopped",
        "starting",
        "running",
    ]
    assert {e["actor"]["kind"] for e in events} == {"token", "system"}

    response = api.client.delete(f"/workspaces/{workspace_id}", HTTP_AUTHORIZATION=f"Bearer {api.token}")
    assert response.status_code == 204
    assert api.get(f"/workspaces/{workspace_id}").status_code == 404
    deadline = time.monotonic() + 60
    while Workspace.objects.get(pk=workspace_id).destroyed_at is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert Workspace.objects.get(pk=workspace_id).destroyed_at is not None
    assert local_machines.find(workspace_id) is None
    assert not volume.exists()
    assert not process_answers(again["private_ip"])


@pytest.mark.worker
def test_each_run_of_a_task_is_an_attempt_on_the_timeline(worker, api, project, local_machines):
    workspace_id = api.post(
        f"/projects/{project.id}/workspaces", {"hardware": {"cpus": 1, "memory_mb": 256}}
    ).json()["id"]
    assert wait_for(api, workspace_id)["status"] == "running"
    attempts = [
        e for e in api.get(f"/workspaces/{workspace_id}/events").json()["events"] if e["type"] == "attempt"
    ]
    (provision,) = attempts
    assert provision["attempt"]["operation"] == "provision"
    assert provision["attempt"]["task_id"]
    assert provision["attempt"]["duration_ms"] >= 0
    assert provision["attempt"]["error"] is None
    assert (provision["attempt"]["number"], provision["attempt"]["outcome"]) == (1, "succeeded")
    assert provision["message"] == "Provision attempt 1 succeeded."  # the sentence, from those columns


@override_settings(PROJECT_REPO_URL_SCHEMES=["https", "file"])
def test_a_failed_attempt_keeps_the_providers_reason(
    api, tmp_path, local_machines, django_capture_on_commit_callbacks
):
    project = api.post("/projects", {"name": "broken", "repo_url": f"file://{tmp_path}/missing"}).json()
    with django_capture_on_commit_callbacks(execute=False):
        workspace_id = api.post(f"/projects/{project['id']}/workspaces").json()["id"]
    workspace_provision(workspace_id=workspace_id, task_id="task-123")
    events = api.get(f"/workspaces/{workspace_id}/events").json()["events"]
    (provision,) = [e for e in events if e["type"] == "attempt"]
    assert provision["attempt"]["task_id"] == "task-123"
    assert "Could not clone" in provision["attempt"]["error"]
    assert (provision["attempt"]["number"], provision["attempt"]["outcome"]) == (1, "failed")
    assert provision["message"] == "Provision attempt 1 failed."
    assert events[-1]["to_status"] == "error"
