"""Bad days, end to end: the API, real Celery workers, the fly driver and the fake Fly Machines API
answering with faults. Whatever happens, every workspace ends ``running``, or ``error`` with a
message, and the provider holds exactly one machine and one volume per running workspace and
nothing else.
"""

import ipaddress
import shutil
import signal
import subprocess
import time

import pytest
from django.conf import settings as django_settings

from workspaces import reconciler
from workspaces.models import Workspace, WorkspaceEvent

pytestmark = pytest.mark.worker
SMALL = {"hardware": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256, "volume_size_gb": 1}}


def create_many(api, project, count):
    ids = []
    for _ in range(count):
        response = api.post(f"/projects/{project.id}/workspaces", SMALL)
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    return ids


def settle(api, ids, timeout=240):
    """Wait until every workspace is running or in error; return their final bodies."""
    deadline = time.monotonic() + timeout
    while True:
        listed = {w["id"]: w for w in api.get("/workspaces").json()["workspaces"]}
        bodies = [listed[workspace_id] for workspace_id in ids]
        if all(b["status"] in ("running", "error") for b in bodies) or time.monotonic() > deadline:
            return bodies
        time.sleep(0.25)


def assert_one_machine_and_volume_per_running_workspace(fly, bodies):
    for body in bodies:
        assert body["status"] in ("running", "error"), body
        if body["status"] == "error":
            assert body["error_message"], body
    fly.reset_faults()  # the provider is well again: the reconciler can see and clean everything
    reconciler.reconcile()  # what a failed provisioning may have left is the reconciler's to remove
    inventory = fly.inventory()
    running = {b["id"]: b for b in bodies if b["status"] == "running"}
    machines = [m for m in inventory["machines"] if m["state"] != "destroyed"]
    by_workspace = {}
    for machine in machines:
        by_workspace.setdefault(machine["config"]["metadata"]["workspace_id"], []).append(machine)
    assert set(by_workspace) == set(running), "machines for workspaces that are not running"
    for workspace_id, held in by_workspace.items():
        assert len(held) == 1, f"{len(held)} machines for {workspace_id}"
        assert held[0]["id"] == running[workspace_id]["machine_id"]
        assert ipaddress.ip_address(held[0]["private_ip"]) == ipaddress.ip_address(
            running[workspace_id]["private_ip"]
        )
    volumes = [v for v in inventory["volumes"] if v.get("state") not in ("pending_destroy", "destroyed")]
    assert len(volumes) == len(running)
    assert {v["attached_machine_id"] for v in volumes} == {b["machine_id"] for b in running.values()}


@pytest.mark.parametrize(
    "fault",
    ["error_5xx_rate", "rate_limit_rate", "timeout_rate", "capacity_rate", "lost_response_rate"],
)
def test_each_kind_of_provider_fault_at_30_percent(worker, api, project, fly, fault):
    fly.set_faults(**{fault: 0.3}, retry_after_seconds=1, hang_seconds=2)
    bodies = settle(api, create_many(api, project, 8))
    assert_one_machine_and_volume_per_running_workspace(fly, bodies)
    assert any(b["status"] == "running" for b in bodies)
    if fault == "capacity_rate":
        errors = [b["error_message"] for b in bodies if b["status"] == "error"]
        assert all("capacity" in e.lower() or "resources" in e.lower() for e in errors), errors


def test_all_faults_at_once(worker, api, project, fly):
    fly.set_faults(
        error_5xx_rate=0.08,
        rate_limit_rate=0.08,
        timeout_rate=0.05,
        lost_response_rate=0.08,
        capacity_rate=0.05,
        retry_after_seconds=1,
        hang_seconds=2,
        latency_ms=20,
    )
    bodies = settle(api, create_many(api, project, 10))
    assert_one_machine_and_volume_per_running_workspace(fly, bodies)
    # an operator can read why each failed one failed
    for body in bodies:
        if body["status"] == "error":
            events = api.get(f"/workspaces/{body['id']}/events").json()["events"]
            assert any(e["attempt"] and e["attempt"]["error"] for e in events)


def test_a_worker_killed_in_the_middle_of_provisioning(worker, api, project, fly, settings):
    """SIGKILL while a provisioning attempt is open; the worker comes back; the reconciler notices
    the attempt that never finished and queues the work again; nothing is made twice."""
    fly.set_faults(latency_ms=400)  # slow enough to be caught in the middle
    ids = create_many(api, project, 2)
    deadline = time.monotonic() + 60
    while not WorkspaceEvent.objects.filter(kind="attempt", duration_ms__isnull=True).exists():
        assert time.monotonic() < deadline, "no attempt started"
        time.sleep(0.05)
    time.sleep(0.5)  # in the middle of it
    worker.kill(signal.SIGKILL)
    open_attempts = WorkspaceEvent.objects.filter(kind="attempt", duration_ms__isnull=True).count()
    assert open_attempts == 1  # the run that died with its worker
    fly.reset_faults()
    worker.start()

    settings.WORKSPACE_ATTEMPT_PRESUMED_DEAD_SECONDS = 0
    settings.WORKSPACE_REQUEUE_AFTER_SECONDS = 0
    report = reconciler.reconcile()
    assert report.requeued  # the dead worker's workspace (and any whose message it held)
    bodies = settle(api, ids)
    assert all(b["status"] == "running" for b in bodies), bodies
    assert_one_machine_and_volume_per_running_workspace(fly, bodies)
    died = next(
        w
        for w in Workspace.objects.filter(pk__in=ids)
        if w.events.filter(kind="attempt", attempt_outcome="abandoned").exists()
    )
    assert died.status == "running"


@pytest.mark.skipif(
    not django_settings.CELERY_BROKER_URL.startswith("redis://") or shutil.which("redis-server") is None,
    reason="restarts the Redis broker: runs in the PostgreSQL + Redis pass of .ci/run",
)
def test_redis_restarted_mid_run(worker, api, project, fly, settings):
    """Redis goes away while work is queued and running, and comes back empty (it keeps nothing on
    disk): the messages it held are gone. Creates made while it is down still succeed; the worker
    reconnects; the reconciler queues the lost work again."""
    port = django_settings.CELERY_BROKER_URL.split(":")[2].split("/")[0]
    fly.set_faults(latency_ms=150)
    ids = create_many(api, project, 4)
    subprocess.run(["redis-cli", "-p", port, "shutdown", "nosave"], check=False, capture_output=True)
    try:
        ids += create_many(api, project, 2)  # the broker is down: the API still answers 201
    finally:
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                port,
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=True,
            capture_output=True,
        )
    for _ in range(100):
        if (
            subprocess.run(["redis-cli", "-p", port, "ping"], capture_output=True, text=True).stdout.strip()
            == "PONG"
        ):
            break
        time.sleep(0.1)
    fly.reset_faults()
    settings.WORKSPACE_REQUEUE_AFTER_SECONDS = 0
    settings.WORKSPACE_ATTEMPT_PRESUMED_DEAD_SECONDS = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        reconciler.reconcile()
        listed = {w["id"]: w for w in api.get("/workspaces").json()["workspaces"]}
        bodies = [listed[i] for i in ids]
        if all(b["status"] in ("running", "error") for b in bodies):
            break
        time.sleep(1)
    assert all(b["status"] == "running" for b in bodies), bodies
    assert_one_machine_and_volume_per_running_workspace(fly, bodies)


def test_a_first_provisioning_skips_the_lookups_and_its_retry_adopts_what_it_made(api, project, fly):
    """Attempt 1 has nothing to adopt, so the fly driver's create skips its own machine lookup and
    its list of every volume of the app (one per create, before: a burst's cost grew with the fleet).
    After a lost answer, attempt 2 finds the machine attempt 1 made."""
    from workspaces.tasks import provision_workspace

    created = api.post(f"/projects/{project.id}/workspaces", SMALL)  # `db`: no message is sent
    workspace_id = created.json()["id"]
    fly.set_faults(lost_response_rate=1.0, actions=["create_machine"])
    provision_workspace.apply(args=[workspace_id], task_id="provision")  # retries run eagerly here

    body = api.get(f"/workspaces/{workspace_id}").json()
    assert body["status"] == "running"
    assert [
        (e["attempt"]["number"], e["attempt"]["outcome"])
        for e in api.get(f"/workspaces/{workspace_id}/events").json()["events"]
        if e["attempt"]
    ] == [(1, "retried"), (2, "succeeded")]
    assert len(fly.requests_for("create_machine")) == 1  # attempt 2 adopted what attempt 1 made
    assert [m["id"] for m in fly.inventory()["machines"]] == [body["machine_id"]]
    assert fly.requests_for("list_volumes") == []
    assert len(fly.requests_for("list_machines")) == 2  # each attempt's `find`, and nothing more


def test_a_pruned_timeline_does_not_make_a_later_run_skip_adoption(api, project, fly):
    """Whether a provisioning run is the workspace's first is a fact kept on the workspace, not a
    count of its timeline rows: with the rows of an interrupted attempt deleted, the next run still
    looks for the volume it made (before, it counted no rows, called itself the first, skipped the
    lookup and made a second volume)."""
    from workspaces.drivers import DriverError
    from workspaces.services import workspace_provision
    from workspaces.tasks import provision_workspace

    workspace_id = api.post(f"/projects/{project.id}/workspaces", SMALL).json()["id"]  # no message sent
    fly.set_faults(lost_response_rate=1.0, actions=["create_volume"])
    with pytest.raises(DriverError):  # the volume is made, its answer lost: a transient error
        workspace_provision(workspace_id=workspace_id, task_id="interrupted")
    assert len(fly.inventory()["volumes"]) == 1
    fly.reset_faults()
    WorkspaceEvent.objects.filter(workspace_id=workspace_id).delete()  # an operator prunes the timeline

    provision_workspace.apply(args=[workspace_id], task_id="later")

    body = api.get(f"/workspaces/{workspace_id}").json()
    assert body["status"] == "running"
    assert [v["id"] for v in fly.inventory()["volumes"]] == [Workspace.objects.get(pk=workspace_id).volume_id]
    assert len(fly.requests_for("create_volume")) == 1
    (later,) = [
        e["attempt"] for e in api.get(f"/workspaces/{workspace_id}/events").json()["events"] if e["attempt"]
    ]
    assert (later["number"], later["outcome"]) == (2, "succeeded")
