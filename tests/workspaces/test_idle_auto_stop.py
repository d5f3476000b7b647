"""Idle auto-stop with a frozen clock: what is idle, what counts as activity, and who stops it."""

import dataclasses
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from config.celery import app
from tests.conftest import Api
from tests.factories import WorkspaceFactory
from workspaces import idle
from workspaces.agent_tokens import agent_token_for
from workspaces.idle import idle_reason, workspaces_stop_idle
from workspaces.models import ActorKind, Workspace, WorkspaceEvent, WorkspaceStatus
from workspaces.services import _machine_spec
from workspaces.tasks import stop_idle_workspaces

pytestmark = pytest.mark.django_db
S = WorkspaceStatus
NOW = datetime(2025, 1, 15, 10, 30, tzinfo=UTC)
TIMEOUT = timedelta(minutes=10)


class Clock:
    """A frozen ``timezone.now`` that only moves when told to."""

    def __init__(self, now: datetime):
        self.now = now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


@pytest.fixture
def clock(monkeypatch, settings):
    settings.WORKSPACE_IDLE_TIMEOUT_SECONDS = 600  # the default, whatever the environment says
    frozen = Clock(NOW)
    monkeypatch.setattr(timezone, "now", lambda: frozen.now)
    return frozen


@pytest.fixture
def make_workspace(project, clock):
    def make(status=S.RUNNING, *, idle_for=timedelta(hours=1), running_for=timedelta(hours=1), **fields):
        return WorkspaceFactory(
            project=project,
            status=status,
            last_activity_at=clock.now - idle_for,
            status_changed_at=clock.now - running_for,
            **fields,
        )

    return make


def status_of(workspace) -> str:
    workspace.refresh_from_db()
    return workspace.status


# --- what is stopped --------------------------------------------------------------------------------


def test_an_idle_workspace_is_stopped_by_the_system_saying_why(
    make_workspace, clock, django_capture_on_commit_callbacks
):
    workspace = make_workspace(idle_for=TIMEOUT + timedelta(seconds=1))

    with django_capture_on_commit_callbacks() as callbacks:
        assert workspaces_stop_idle() == 1

    assert status_of(workspace) == S.STOPPING
    event = workspace.events.get()
    assert (event.kind, event.from_status, event.to_status) == (
        WorkspaceEvent.Kind.STATUS,
        "running",
        "stopping",
    )
    assert event.actor_kind == ActorKind.SYSTEM and event.actor_user is None
    assert event.message == "Stopped after 10 minutes without activity."
    assert len(callbacks) == 1  # the stop task, queued after commit
    assert workspaces_stop_idle() == 0  # a second run finds nothing more to do


@pytest.mark.parametrize(
    ("idle_for", "stopped"),
    [
        (TIMEOUT - timedelta(seconds=1), False),
        (TIMEOUT, False),  # exactly the timeout: not yet
        (TIMEOUT + timedelta(microseconds=1), True),
        (TIMEOUT + timedelta(seconds=1), True),
    ],
)
def test_the_timeout_boundary(make_workspace, clock, idle_for, stopped):
    workspace = make_workspace(idle_for=idle_for)

    assert workspaces_stop_idle() == int(stopped)
    assert status_of(workspace) == (S.STOPPING if stopped else S.RUNNING)


def test_now_can_be_passed_explicitly(make_workspace, clock):
    workspace = make_workspace(idle_for=timedelta(minutes=5), running_for=timedelta(minutes=5))

    assert workspaces_stop_idle(now=NOW + timedelta(minutes=5)) == 0
    assert workspaces_stop_idle(now=NOW + timedelta(minutes=5, seconds=1)) == 1
    assert status_of(workspace) == S.STOPPING


def test_keep_active_workspaces_are_never_stopped(make_workspace, clock):
    workspace = make_workspace(keep_active=True, idle_for=timedelta(days=30), running_for=timedelta(days=30))

    assert workspaces_stop_idle() == 0
    assert status_of(workspace) == S.RUNNING


@pytest.mark.parametrize("status", [s for s in S if s != S.RUNNING])
def test_only_running_workspaces_are_stopped(make_workspace, clock, status):
    workspace = make_workspace(status, idle_for=timedelta(days=1), running_for=timedelta(days=1))

    assert workspaces_stop_idle() == 0
    assert status_of(workspace) == status
    assert workspace.events.count() == 0


def test_deleted_workspaces_are_left_to_their_destroy(make_workspace, clock):
    workspace = make_workspace(deleted_at=NOW - timedelta(hours=1))

    assert workspaces_stop_idle() == 0
    assert status_of(workspace) == S.RUNNING


def test_a_workspace_that_just_became_running_gets_a_whole_timeout(make_workspace, clock):
    # Created (last activity) an hour ago, but provisioning took until five minutes ago.
    workspace = make_workspace(idle_for=timedelta(hours=1), running_for=timedelta(minutes=5))

    assert workspaces_stop_idle() == 0
    clock.advance(timedelta(minutes=5, seconds=1))
    assert workspaces_stop_idle() == 1
    assert status_of(workspace) == S.STOPPING


def test_the_timeout_is_a_setting_and_the_reason_says_it(make_workspace, clock, settings):
    settings.WORKSPACE_IDLE_TIMEOUT_SECONDS = 60
    workspace = make_workspace(idle_for=timedelta(seconds=61), running_for=timedelta(seconds=61))

    assert workspaces_stop_idle() == 1
    assert workspace.events.get().message == "Stopped after 1 minute without activity."
    assert idle_reason(90) == "Stopped after 90 seconds without activity."
    assert idle_reason(1800) == "Stopped after 30 minutes without activity."


def test_one_query_selects_the_idle_workspaces(make_workspace, clock, django_assert_num_queries):
    make_workspace(idle_for=timedelta(minutes=1))
    make_workspace(keep_active=True)
    make_workspace(S.STOPPED)

    with django_assert_num_queries(1):
        assert workspaces_stop_idle() == 0


def test_a_workspace_changed_meanwhile_is_skipped_and_the_rest_stopped(make_workspace, clock, monkeypatch):
    first = make_workspace(idle_for=timedelta(hours=2))
    second = make_workspace(idle_for=timedelta(hours=1))
    real_stop = idle.workspace_stop

    def stop_after_a_user_stopped_it_first(*, workspace, **kwargs):
        if workspace.pk == first.pk:  # a user's stop commits between our select and our stop
            Workspace.objects.filter(pk=first.pk).update(status=S.STOPPED)
        return real_stop(workspace=workspace, **kwargs)

    monkeypatch.setattr(idle, "workspace_stop", stop_after_a_user_stopped_it_first)

    assert workspaces_stop_idle() == 1
    assert (status_of(first), status_of(second)) == (S.STOPPED, S.STOPPING)
    assert first.events.count() == 0


# --- what counts as activity ---------------------------------------------------------------------------


def test_a_heartbeat_resets_the_clock(make_workspace, clock):
    workspace = make_workspace(idle_for=timedelta(minutes=9))
    agent = Api(agent_token_for(workspace.id))

    assert agent.post(f"/workspaces/{workspace.id}/heartbeat").status_code == 204
    workspace.refresh_from_db()
    assert workspace.last_activity_at == NOW

    clock.advance(TIMEOUT)  # without the heartbeat it would be idle for 19 minutes now
    assert workspaces_stop_idle() == 0
    clock.advance(timedelta(seconds=1))
    assert workspaces_stop_idle() == 1


def test_a_patch_resets_the_clock(make_workspace, clock, api):
    workspace = make_workspace(idle_for=timedelta(minutes=9))

    response = api.client.patch(
        f"/workspaces/{workspace.id}",
        {"keep_active": False},  # even a change that changes nothing
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {api.token}",
    )

    assert response.status_code == 200
    workspace.refresh_from_db()
    assert workspace.last_activity_at == NOW
    clock.advance(TIMEOUT)
    assert workspaces_stop_idle() == 0


def test_a_stop_resets_the_clock(make_workspace, clock, api):
    workspace = make_workspace(idle_for=timedelta(days=1))

    assert api.post(f"/workspaces/{workspace.id}/stop").status_code == 200

    workspace.refresh_from_db()
    assert (workspace.status, workspace.last_activity_at) == (S.STOPPING, NOW)


def test_a_start_resets_the_clock(make_workspace, clock, api):
    workspace = make_workspace(S.STOPPED, idle_for=timedelta(days=1), running_for=timedelta(days=1))

    assert api.post(f"/workspaces/{workspace.id}/start").status_code == 200
    workspace.refresh_from_db()
    assert (workspace.status, workspace.last_activity_at) == (S.STARTING, NOW)

    # Provisioning takes it to running a minute later; it then has the whole timeout from the start.
    Workspace.objects.filter(pk=workspace.pk).update(status=S.RUNNING, status_changed_at=clock.now)
    clock.advance(timedelta(minutes=1))
    Workspace.objects.filter(pk=workspace.pk).update(status_changed_at=clock.now)
    clock.advance(TIMEOUT - timedelta(minutes=1))
    assert workspaces_stop_idle() == 0


def test_reading_is_not_activity(make_workspace, clock, api, project):
    workspace = make_workspace(idle_for=TIMEOUT + timedelta(seconds=1))
    before = Workspace.objects.values_list("last_activity_at", "updated_at").get(pk=workspace.pk)

    for path in (
        f"/workspaces/{workspace.id}",
        "/workspaces",
        f"/workspaces?status=running&project_id={project.id}",
        f"/projects/{project.id}/workspaces",
        f"/workspaces/{workspace.id}/events",
    ):
        assert api.get(path).status_code == 200, path

    after = Workspace.objects.values_list("last_activity_at", "updated_at").get(pk=workspace.pk)
    assert after == before
    assert workspaces_stop_idle() == 1


# --- the periodic task ----------------------------------------------------------------------------------


def test_the_task_runs_every_minute_from_the_beat_schedule():
    entries = [e for e in app.conf.beat_schedule.values() if e["task"] == stop_idle_workspaces.name]

    assert len(entries) == 1
    assert entries[0]["schedule"] == django_settings.WORKSPACE_IDLE_CHECK_INTERVAL_SECONDS == 60
    assert entries[0]["options"]["expires"] == 60  # a backlog left while no worker ran is dropped
    assert stop_idle_workspaces.name == "workspaces.tasks.stop_idle_workspaces"
    assert stop_idle_workspaces.name in app.tasks


def test_the_task_calls_the_service(make_workspace, clock):
    workspace = make_workspace()

    assert stop_idle_workspaces.apply().get() == 1
    assert status_of(workspace) == S.STOPPING


@pytest.mark.worker
def test_a_real_worker_stops_an_idle_workspace(worker, project):
    long_ago = timezone.now() - timedelta(hours=1)
    values = {"cpu_kind": "shared", "cpus": 1, "memory_mb": 512, "volume_size_gb": 1, "driver": "local"}
    workspace = Workspace.objects.create(
        project=project,
        created_by=project.owner,
        status=S.RUNNING,
        last_activity_at=long_ago,
        status_changed_at=long_ago,
        **values,
    )  # no machine: the stop task has nothing to stop at the provider

    stop_idle_workspaces.delay()

    deadline = time.monotonic() + 60
    while status_of(workspace) != S.STOPPED and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workspace.status == S.STOPPED
    assert [(e.to_status, e.actor_kind) for e in workspace.events.exclude(kind="attempt")] == [
        ("stopping", ActorKind.SYSTEM),
        ("stopped", ActorKind.SYSTEM),
    ]
    assert workspace.events.first().message == "Stopped after 10 minutes without activity."


# --- end to end: a local machine's agent keeps its workspace alive --------------------------------------


def test_a_local_machine_reports_use_to_the_api(
    live_server, transactional_db, project, local_machines, settings
):
    settings.WORKSPACE_HEARTBEAT_BASE_URL = live_server.url
    long_ago = timezone.now() - timedelta(hours=1)
    values = {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256, "volume_size_gb": 1, "driver": "local"}
    workspace = Workspace.objects.create(
        project=project, created_by=project.owner, status=S.RUNNING, last_activity_at=long_ago, **values
    )
    spec = _machine_spec(workspace)
    spec = dataclasses.replace(spec, env={**spec.env, "WORKSPACE_HEARTBEAT_INTERVAL_SECONDS": "0.2"})
    machine = local_machines.wait_started(local_machines.create(spec).machine_id, timeout=30)

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"http://{machine.private_ip}:{settings.LOCAL_DRIVER_AGENT_PORT}/preview/index.html"
    with pytest.raises(urllib.error.HTTPError):  # the agent serves no preview yet: 404, but still use
        opener.open(url, timeout=5)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workspace.refresh_from_db()
        if workspace.last_activity_at > long_ago:
            break
        time.sleep(0.1)
    assert workspace.last_activity_at > long_ago


def test_a_heartbeat_that_lands_after_the_selection_still_saves_the_workspace(
    make_workspace, clock, monkeypatch
):
    """The idle query and each stop are separate statements; activity in between must win."""
    workspace = make_workspace(idle_for=timedelta(hours=1))
    real_stop = idle.workspace_stop

    def heartbeat_then_stop(**kwargs):
        idle.workspace_heartbeat(workspace_id=workspace.id)  # the machine reports activity just now
        return real_stop(**kwargs)

    monkeypatch.setattr(idle, "workspace_stop", heartbeat_then_stop)
    assert workspaces_stop_idle() == 0
    assert status_of(workspace) == S.RUNNING


def test_turning_keep_active_on_after_the_selection_still_saves_the_workspace(
    make_workspace, clock, monkeypatch
):
    workspace = make_workspace(idle_for=timedelta(hours=1))
    real_stop = idle.workspace_stop

    def keep_then_stop(**kwargs):
        Workspace.objects.filter(pk=workspace.pk).update(keep_active=True)
        return real_stop(**kwargs)

    monkeypatch.setattr(idle, "workspace_stop", keep_then_stop)
    assert workspaces_stop_idle() == 0
    assert status_of(workspace) == S.RUNNING
