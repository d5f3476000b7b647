"""Start, stop, delete, patch and the timeline: every operation in every state, and who may do it."""

import pytest

from projects.models import Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, WorkspaceFactory
from workspaces.models import Workspace, WorkspaceEvent, WorkspaceStatus

pytestmark = pytest.mark.django_db
S = WorkspaceStatus
ALL_STATES = list(S)


def make_workspace(project, status=S.RUNNING, **fields):
    return WorkspaceFactory(project=project, status=status, **fields)


# --- the matrix: operation × state --------------------------------------------------------------

START_FROM = {S.STOPPED, S.ERROR}
STOP_FROM = {S.RUNNING, S.STOP_FAILED}


@pytest.mark.parametrize("state", ALL_STATES)
def test_start_in_every_state(api, project, state, django_capture_on_commit_callbacks):
    workspace = make_workspace(project, state)
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(f"/workspaces/{workspace.id}/start")
    workspace.refresh_from_db()
    if state in START_FROM:
        assert response.status_code == 200
        assert response.json() == {"status": "starting"}
        assert workspace.status == S.STARTING
        assert len(callbacks) == 1  # the start is queued after commit
    else:
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "invalid_state"
        assert f"'{state}'" in body["error"]
        assert set(body["details"][0]["allowed"]["choices"]) == {"stopped", "error"}
        assert workspace.status == state
        assert callbacks == []


@pytest.mark.parametrize("state", ALL_STATES)
def test_stop_in_every_state(api, project, state, django_capture_on_commit_callbacks):
    workspace = make_workspace(project, state)
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(f"/workspaces/{workspace.id}/stop")
    workspace.refresh_from_db()
    if state in STOP_FROM:
        assert response.status_code == 200
        assert response.json() == {"status": "stopping"}
        assert workspace.status == S.STOPPING
        assert len(callbacks) == 1
    else:
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_state"
        assert set(response.json()["details"][0]["allowed"]["choices"]) == {"running", "stop_failed"}
        assert workspace.status == state


@pytest.mark.parametrize("state", ALL_STATES)
def test_delete_in_every_state(api, project, state, django_capture_on_commit_callbacks):
    workspace = make_workspace(project, state)
    with django_capture_on_commit_callbacks() as callbacks:
        assert (
            api.client.delete(
                f"/workspaces/{workspace.id}", HTTP_AUTHORIZATION=f"Bearer {api.token}"
            ).status_code
            == 204
        )
    assert len(callbacks) == 1
    assert api.get(f"/workspaces/{workspace.id}").status_code == 404
    assert api.get("/workspaces").json() == {"workspaces": []}
    workspace.refresh_from_db()
    assert workspace.deleted_at is not None  # operators still see the record
    # deleting again is a 404: it is gone from the API
    assert (
        api.client.delete(f"/workspaces/{workspace.id}", HTTP_AUTHORIZATION=f"Bearer {api.token}").status_code
        == 404
    )


@pytest.mark.parametrize("state", ALL_STATES)
def test_patch_keep_active_in_every_state(api, project, state):
    workspace = make_workspace(project, state)
    response = api.client.patch(
        f"/workspaces/{workspace.id}",
        {"keep_active": True},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {api.token}",
    )
    assert response.status_code == 200
    assert response.json()["keep_active"] is True
    assert response.json()["status"] == state
    assert Workspace.objects.get(pk=workspace.pk).keep_active is True


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"keep_active": "yes"}, "invalid_type"),
        ({"status": "running"}, "unknown_field"),
        ({"keep_active": None}, "invalid_type"),
    ],
)
def test_patch_rejects_anything_but_keep_active(api, project, body, code):
    workspace = make_workspace(project)
    response = api.client.patch(
        f"/workspaces/{workspace.id}", body, format="json", HTTP_AUTHORIZATION=f"Bearer {api.token}"
    )
    assert response.status_code == 400
    assert response.json()["details"][0]["code"] == code


# --- who may do what ------------------------------------------------------------------------------

WRITES = [
    ("post", "/workspaces/{id}/start", S.STOPPED),
    ("post", "/workspaces/{id}/stop", S.RUNNING),
    ("delete", "/workspaces/{id}", S.RUNNING),
    ("patch", "/workspaces/{id}", S.RUNNING),
]
READS = ["/workspaces/{id}", "/workspaces/{id}/events"]


def call(api, method, path):
    kwargs = {"format": "json", "HTTP_AUTHORIZATION": f"Bearer {api.token}"}
    if method == "patch":
        return api.client.patch(path, {"keep_active": True}, **kwargs)
    return getattr(api.client, method)(path, **kwargs)


@pytest.mark.parametrize(("method", "path", "state"), WRITES)
def test_a_viewer_may_not_write(api_for, project, method, path, state):
    workspace = make_workspace(project, state)
    viewer = api_for(MembershipFactory(project=project, role=Role.VIEWER).user)
    response = call(viewer, method, path.format(id=workspace.id))
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert Workspace.objects.get(pk=workspace.pk).status == state


@pytest.mark.parametrize(("method", "path", "state"), WRITES)
def test_a_member_may_write(api_for, project, method, path, state):
    workspace = make_workspace(project, state)
    member = api_for(MembershipFactory(project=project, role=Role.MEMBER).user)
    assert call(member, method, path.format(id=workspace.id)).status_code in (200, 204)


@pytest.mark.parametrize(("method", "path", "state"), [*WRITES, *[("get", p, S.RUNNING) for p in READS]])
def test_a_stranger_gets_404_everywhere(api_for, project, method, path, state):
    workspace = make_workspace(project, state)
    stranger = api_for(UserFactory())
    response = call(stranger, method, path.format(id=workspace.id))
    assert response.status_code == 404
    assert response.json() == {"error": "Workspace not found.", "code": "not_found"}


@pytest.mark.parametrize(("method", "path", "state"), [*WRITES, *[("get", p, S.RUNNING) for p in READS]])
def test_a_non_uuid_is_404_everywhere(api, method, path, state):
    assert call(api, method, path.format(id="not-a-uuid")).status_code == 404


# --- lists ----------------------------------------------------------------------------------------


def test_list_across_projects_with_filters(api, user):
    one, two = ProjectFactory(owner=user), ProjectFactory(owner=user)
    shared = ProjectFactory()
    MembershipFactory(project=shared, user=user, role=Role.VIEWER)
    a = make_workspace(one, S.RUNNING)
    b = make_workspace(two, S.STOPPED)
    c = make_workspace(shared, S.RUNNING)
    make_workspace(ProjectFactory(), S.RUNNING)  # someone else's
    make_workspace(one, S.RUNNING, deleted_at="2026-01-01T00:00:00Z")  # deleted

    ids = lambda response: [w["id"] for w in response.json()["workspaces"]]  # noqa: E731
    assert ids(api.get("/workspaces")) == [str(a.id), str(b.id), str(c.id)]
    assert ids(api.get("/workspaces", {"status": "running"})) == [str(a.id), str(c.id)]
    assert ids(api.get("/workspaces", {"project_id": str(two.id)})) == [str(b.id)]
    assert ids(api.get(f"/projects/{one.id}/workspaces")) == [str(a.id)]
    assert ids(api.get(f"/projects/{shared.id}/workspaces")) == [str(c.id)]


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"status": "sleeping"}, "status", "invalid_status"),
        ({"project_id": "nope"}, "project_id", "invalid_uuid"),
        ({"limit": "0"}, "limit", "invalid_limit"),
        ({"limit": "abc"}, "limit", "invalid_limit"),
        ({"limit": "100000"}, "limit", "invalid_limit"),
        ({"offset": "-1"}, "offset", "invalid_offset"),
        # Found by the fuzzer: an empty value is not "absent", and a huge offset was a 500.
        ({"limit": ""}, "limit", "invalid_limit"),
        ({"offset": ""}, "offset", "invalid_offset"),
        ({"offset": "46058271757388099501582480048128"}, "offset", "invalid_offset"),
        ({"status": ""}, "status", "invalid_status"),
        ({"project_id": ""}, "project_id", "invalid_uuid"),
    ],
)
def test_bad_list_parameters_are_a_400(api, params, field, code):
    response = api.get("/workspaces", params)
    assert response.status_code == 400
    assert (response.json()["details"][0]["field"], response.json()["details"][0]["code"]) == (field, code)


def test_limit_and_offset_page_in_a_stable_order(api, project):
    made = [str(make_workspace(project).id) for _ in range(5)]
    first = api.get("/workspaces", {"limit": 2})
    assert [w["id"] for w in first.json()["workspaces"]] == made[:2]
    assert 'rel="next"' in first["Link"] and "offset=2" in first["Link"]
    rest = api.get("/workspaces", {"limit": 2, "offset": 4})
    assert [w["id"] for w in rest.json()["workspaces"]] == made[4:]
    assert not rest.has_header("Link")


@pytest.mark.parametrize("path", ["/workspaces", "/projects/{project}/workspaces"])
def test_lists_cost_the_same_queries_for_few_or_many_rows(api, project, path, django_assert_max_num_queries):
    path = path.format(project=project.id)
    for _ in range(3):
        make_workspace(project)
    api.get(path)  # warm the token's last_used_at
    with django_assert_max_num_queries(10) as few:
        assert len(api.get(path).json()["workspaces"]) == 3
    for _ in range(60):
        make_workspace(project)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(api.get(path).json()["workspaces"]) == 63


def test_events_cost_the_same_queries_for_few_or_many(api, project, user, django_assert_max_num_queries):
    workspace = make_workspace(project, S.RUNNING)
    for _ in range(3):
        WorkspaceEvent.objects.create(
            workspace=workspace, kind="info", message="x", actor_kind="user", actor_user=user
        )
    api.get(f"/workspaces/{workspace.id}/events")
    with django_assert_max_num_queries(10) as few:
        api.get(f"/workspaces/{workspace.id}/events")
    for _ in range(40):
        WorkspaceEvent.objects.create(
            workspace=workspace, kind="info", message="x", actor_kind="user", actor_user=user
        )
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(api.get(f"/workspaces/{workspace.id}/events").json()["events"]) == 43


def test_the_timeline_says_who_acted(api, project, user):
    workspace = make_workspace(project, S.RUNNING)
    api.post(f"/workspaces/{workspace.id}/stop")
    (event,) = api.get(f"/workspaces/{workspace.id}/events").json()["events"]
    assert event["type"] == "status"
    assert (event["from_status"], event["to_status"]) == ("running", "stopping")
    assert event["actor"]["kind"] == "token"
    assert event["actor"]["email"] == user.email
    assert event["actor"]["token_prefix"].startswith("wsk_")
    assert event["created_at"].endswith("Z")


# --- the URLs the router serves -------------------------------------------------------------------


@pytest.mark.parametrize("slash", ["", "/"])
def test_every_workspace_url_answers_with_or_without_a_trailing_slash(api, project, slash, tasks_not_sent):
    workspace = make_workspace(project, S.STOPPED)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {api.token}"}
    base = f"/workspaces/{workspace.id}"
    assert api.get(f"/workspaces{slash}").status_code == 200
    assert api.get(f"/projects/{project.id}/workspaces{slash}").status_code == 200
    assert api.post(f"/projects/{project.id}/workspaces/plan{slash}").status_code == 200
    assert api.get(f"{base}{slash}").status_code == 200
    assert api.get(f"{base}/events{slash}").status_code == 200
    assert api.client.head(f"{base}{slash}", **auth).status_code == 200
    assert api.client.options(f"{base}{slash}", **auth).status_code == 200
    assert api.client.patch(f"{base}{slash}", {}, format="json", **auth).status_code == 200
    assert api.post(f"{base}/start{slash}").status_code == 200
    assert api.client.delete(f"{base}{slash}", **auth).status_code == 204


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/workspaces"),
        ("put", "/workspaces/{id}"),
        ("get", "/workspaces/{id}/start"),
        ("delete", "/projects/{project}/workspaces"),
        ("get", "/projects/{project}/workspaces/plan"),
    ],
)
def test_a_method_a_url_does_not_serve_is_a_405_in_the_error_shape(api, project, method, path):
    workspace = make_workspace(project)
    response = getattr(api.client, method)(
        path.format(id=workspace.id, project=project.id), HTTP_AUTHORIZATION=f"Bearer {api.token}"
    )
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert method.upper() not in response["Allow"]
