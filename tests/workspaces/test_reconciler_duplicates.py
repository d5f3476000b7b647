"""A second machine (and volume) at the provider for a workspace that runs on another one: what a
provisioning that did not find the first one's machine leaves behind. The reconciler destroys the
extras and keeps the workspace's own machine and volume, its data; an operator can do it from the
admin's orphans page too. Against the fake Fly Machines API, which can hold two machines per
workspace (the local driver cannot: one record per workspace, made under a lock)."""

import pytest

from workspaces import reconciler
from workspaces.drivers import MachineSpec, get_driver
from workspaces.drivers.fly import volume_name
from workspaces.models import Workspace, WorkspaceEvent
from workspaces.tasks import provision_workspace, stop_workspace

SMALL = {"hardware": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256, "volume_size_gb": 1}}
ORPHANS = "/admin/workspaces/workspace/orphans/"


@pytest.fixture
def running(api, project, fly):
    created = api.post(f"/projects/{project.id}/workspaces", SMALL)
    assert created.status_code == 201, created.content
    provision_workspace.apply(args=[created.json()["id"]])
    body = api.get(f"/workspaces/{created.json()['id']}").json()
    assert body["status"] == "running", body
    return body


def make_duplicate(workspace_id: str) -> str:
    """A second volume and machine for the workspace, made the way a first attempt makes them
    (without looking for an earlier one): the id of the second machine."""
    workspace = Workspace.objects.get(pk=workspace_id)
    spec = MachineSpec(workspace_id=workspace_id, hardware=workspace.hardware, first_attempt=True)
    return get_driver().create(spec).machine_id


def held(fly, workspace_id: str) -> tuple[list[str], list[str]]:
    """The machine ids and volume ids the fake holds for the workspace."""
    inventory = fly.inventory()
    machines = [
        m["id"]
        for m in inventory["machines"]
        if m["config"]["metadata"].get("workspace_id") == workspace_id and m["state"] != "destroyed"
    ]
    volumes = [v["id"] for v in inventory["volumes"] if v["name"] == volume_name(workspace_id)]
    return machines, volumes


def mounted_volume(fly, machine_id: str) -> str:
    [machine] = [m for m in fly.inventory()["machines"] if m["id"] == machine_id]
    return machine["config"]["mounts"][0]["volume"]


@pytest.mark.django_db
def test_the_reconciler_destroys_a_second_machine_and_keeps_the_workspaces_own(api, running, fly):
    workspace_id, own = running["id"], running["machine_id"]
    own_volume = mounted_volume(fly, own)
    extra = make_duplicate(workspace_id)
    assert sorted(held(fly, workspace_id)[0]) == sorted([own, extra])
    assert len(held(fly, workspace_id)[1]) == 2

    report = reconciler.reconcile()

    assert report.orphans_destroyed == [workspace_id]
    assert report.vanished == []
    assert held(fly, workspace_id) == ([own], [own_volume])
    body = api.get(f"/workspaces/{workspace_id}").json()
    assert (body["status"], body["machine_id"], body["error_message"]) == ("running", own, None)
    note = WorkspaceEvent.objects.filter(workspace_id=workspace_id, kind="info").latest("id").message
    assert f"machine {extra}" in note and f"runs on machine {own}, which is kept" in note

    # The next pass finds nothing more to do.
    assert reconciler.reconcile().orphans_destroyed == []


@pytest.mark.django_db
def test_a_stopped_workspace_keeps_its_volume_when_a_duplicate_is_destroyed(api, running, fly):
    workspace_id, own = running["id"], running["machine_id"]
    own_volume = mounted_volume(fly, own)
    assert api.post(f"/workspaces/{workspace_id}/stop").status_code == 200
    stop_workspace.apply(args=[workspace_id])
    assert api.get(f"/workspaces/{workspace_id}").json()["status"] == "stopped"
    make_duplicate(workspace_id)

    assert reconciler.reconcile().orphans_destroyed == [workspace_id]

    assert held(fly, workspace_id) == ([own], [own_volume])
    # ... and it starts again on its own machine, with its own volume.
    assert api.post(f"/workspaces/{workspace_id}/start").status_code == 200


@pytest.mark.django_db
def test_a_workspace_being_provisioned_is_not_judged(api, project, fly):
    """While ``creating`` the row names no machine yet: two machines may be a retry's work under
    way, which adoption settles; the reconciler leaves them."""
    created = api.post(f"/projects/{project.id}/workspaces", SMALL).json()
    make_duplicate(created["id"])
    make_duplicate(created["id"])
    assert reconciler.reconcile().orphans_destroyed == []
    assert len(held(fly, created["id"])[0]) == 2


@pytest.mark.django_db
def test_an_operator_destroys_the_duplicate_from_the_orphans_page(admin_client, api, running, fly):
    workspace_id, own = running["id"], running["machine_id"]
    extra = make_duplicate(workspace_id)

    page = admin_client.get(ORPHANS).content.decode()
    orphans = page.split('id="orphans"')[1].split("</table>")[0]
    assert workspace_id in orphans and f"machine {extra}" in orphans and "a duplicate" in orphans
    assert f"machine {own} (" not in orphans  # listed as kept, not as a resource to destroy

    admin_client.post(ORPHANS, {"action": "destroy", "workspace_id": workspace_id})

    assert held(fly, workspace_id)[0] == [own]
    assert api.get(f"/workspaces/{workspace_id}").json()["status"] == "running"
    event = WorkspaceEvent.objects.filter(workspace_id=workspace_id, kind="info").latest("id")
    assert "destroyed orphan" in event.message and f"machine {extra}" in event.message
