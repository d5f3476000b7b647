"""Issue 3's "done when": a whole working day through the API alone, on a real worker.

Create a project, change the defaults, create two workspaces, list them, stop one, start it again,
watch its events, delete it, revoke a token — every step as a curl or SDK user would make it.
"""

import pytest

from tests.conftest import Api, wait_for

pytestmark = pytest.mark.worker


def test_a_working_day(worker, api, user):
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {api.token}"}

    # who am I, and a project to work in
    assert api.get("/profile").json()["email"] == user.email
    project = api.post("/projects", {"name": "webapp", "description": "the shop"}).json()

    # smaller defaults for the day
    settings = api.client.patch(
        "/user/settings",
        {"default_hardware": {"cpus": 1, "memory_mb": 512, "volume_size_gb": 2}},
        format="json",
        **bearer,
    )
    assert settings.status_code == 200

    # two workspaces, one with more memory
    first = api.post(f"/projects/{project['id']}/workspaces").json()
    second = api.post(f"/projects/{project['id']}/workspaces", {"hardware": {"memory_mb": 1024}}).json()
    assert first["hardware"] == {
        "cpu_kind": "shared",
        "cpus": 1,
        "memory_mb": 512,
        "volume_size_gb": 2,
        "gpu_kind": None,
    }
    assert second["hardware"]["memory_mb"] == 1024
    assert wait_for(api, first["id"], {"running", "error"})["status"] == "running"
    assert wait_for(api, second["id"], {"running", "error"})["status"] == "running"

    listed = api.get("/workspaces", {"project_id": project["id"], "status": "running"}).json()["workspaces"]
    assert {w["id"] for w in listed} == {first["id"], second["id"]}

    # a wrong move gets a clear 4xx
    wrong = api.post(f"/workspaces/{first['id']}/start")
    assert wrong.status_code == 400 and wrong.json()["code"] == "invalid_state"

    # lunch: stop one, then start it again
    assert api.post(f"/workspaces/{first['id']}/stop").json() == {"status": "stopping"}
    assert wait_for(api, first["id"], {"stopped", "stop_failed"})["status"] == "stopped"
    assert api.post(f"/workspaces/{first['id']}/start").json() == {"status": "starting"}
    assert wait_for(api, first["id"], {"running", "error"})["status"] == "running"

    events = api.get(f"/workspaces/{first['id']}/events").json()["events"]
    assert [e["to_status"] for e in events if e["type"] == "status"][-4:] == [
        "stopping",
        "stopped",
        "starting",
        "running",
    ]

    # end of the day: delete one, list, revoke the token
    assert api.client.delete(f"/workspaces/{second['id']}", **bearer).status_code == 204
    assert [w["id"] for w in api.get("/workspaces").json()["workspaces"]] == [first["id"]]

    spare = api.post("/auth/tokens", {"name": "spare"}).json()
    assert Api(spare["token"]).get("/profile").status_code == 200
    assert api.client.delete(f"/auth/tokens/{spare['id']}", **bearer).status_code == 204
    assert Api(spare["token"]).get("/profile").status_code == 401
