import json
import uuid

import pytest
from django.test import override_settings

from projects.models import Project, Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from workspaces import services as workspace_services
from workspaces.models import Workspace, WorkspaceEvent, WorkspaceStatus

pytestmark = pytest.mark.django_db

PROJECT_FIELDS = {"id", "name", "description", "repo_url", "default_branch", "created_at", "updated_at"}


def patch(api, path, data):
    return api.client.patch(path, data, format="json", HTTP_AUTHORIZATION=f"Bearer {api.token}")


def delete(api, path):
    return api.client.delete(path, HTTP_AUTHORIZATION=f"Bearer {api.token}")


def make_workspace(project, status=WorkspaceStatus.RUNNING, **fields):
    values = {"cpu_kind": "shared", "cpus": 1, "memory_mb": 512, "volume_size_gb": 1, "driver": "local"}
    return Workspace.objects.create(
        project=project, created_by=project.owner, status=status, **{**values, **fields}
    )


@pytest.fixture
def people(api, api_for, project):
    """The project's owner, a member, a viewer and a stranger, each as an API client."""
    return {
        "owner": api,
        "member": api_for(MembershipFactory(project=project, role=Role.MEMBER).user),
        "viewer": api_for(MembershipFactory(project=project, role=Role.VIEWER).user),
        "stranger": api_for(UserFactory()),
    }


def test_create_a_project(api, user):
    response = api.post(
        "/projects", {"name": "web", "description": "the site", "repo_url": "https://github.com/a/b.git"}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == PROJECT_FIELDS
    assert (body["name"], body["repo_url"], body["default_branch"]) == (
        "web",
        "https://github.com/a/b.git",
        None,
    )
    assert response["Location"] == f"/projects/{body['id']}"
    assert Project.objects.get(pk=body["id"]).owner == user
    assert api.get(f"/projects/{body['id']}").json() == body


def test_a_duplicate_name_is_a_409_and_keeps_the_first(api):
    first = api.post("/projects", {"name": "web"}).json()
    response = api.post("/projects", {"name": "web", "description": "second"})
    assert response.status_code == 409
    assert response.json()["code"] == "project_name_taken"
    assert Project.objects.get().id == uuid.UUID(first["id"])


def test_the_same_name_for_two_owners_is_fine(api, api_for):
    assert api.post("/projects", {"name": "web"}).status_code == 201
    assert api_for(UserFactory()).post("/projects", {"name": "web"}).status_code == 201


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({}, "name", "required"),
        ({"name": ""}, "name", "blank"),
        ({"name": 5}, "name", "invalid_type"),
        ({"name": "x" * 101}, "name", "max_length"),
        ({"name": "a", "extra": 1}, "extra", "unknown_field"),
        ({"name": "a", "repo_url": "/etc"}, "repo_url", "invalid_repo_url"),
        ({"name": "a", "repo_url": "file:///etc"}, "repo_url", "invalid_repo_url"),
        ({"name": "a", "repo_url": "ftp://x/y"}, "repo_url", "invalid_repo_url"),
        ({"name": "a", "default_branch": "bad branch"}, "default_branch", "invalid_branch"),
        ({"name": "a", "default_branch": "../x"}, "default_branch", "invalid_branch"),
        # The schema's patterns are the rules (found by the fuzzer: these were taken).
        ({"name": "a", "default_branch": "×ø"}, "default_branch", "invalid_branch"),
        ({"name": "a", "repo_url": "https://host?x"}, "repo_url", "invalid_repo_url"),
    ],
)
def test_invalid_projects(api, body, field, code):
    response = api.post("/projects", body)
    assert response.status_code == 400, response.content
    assert response.json()["details"][0]["field"] == field
    assert response.json()["details"][0]["code"] == code
    assert not Project.objects.exists()


@pytest.mark.parametrize(
    "repo_url", ["git@github.com:org/repo.git", "ssh://git@host/repo.git", "https://host/r"]
)
def test_usual_git_addresses_are_accepted(api, repo_url):
    assert api.post("/projects", {"name": "a", "repo_url": repo_url}).status_code == 201


@override_settings(PROJECT_REPO_URL_SCHEMES=["https", "file"])
def test_a_deployment_can_allow_file_urls(api):
    assert api.post("/projects", {"name": "a", "repo_url": "file:///srv/repos/a.git"}).status_code == 201


def test_members_and_viewers_see_the_project_strangers_do_not(api_for, db):
    project = ProjectFactory()
    member = MembershipFactory(project=project, role=Role.MEMBER).user
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user
    assert api_for(member).get(f"/projects/{project.id}").status_code == 200
    assert api_for(viewer).get(f"/projects/{project.id}").status_code == 200
    stranger = api_for(UserFactory()).get(f"/projects/{project.id}")
    assert stranger.status_code == 404
    assert stranger.json() == {"error": "Project not found.", "code": "not_found"}


def test_a_project_id_that_is_not_a_uuid_is_a_404(api):
    assert api.get("/projects/12345").status_code == 404


def test_unknown_endpoints_answer_in_our_shape(api):
    response = api.get("/no/such/thing")
    assert response.status_code == 404
    assert response.json() == {"error": "No such endpoint.", "code": "not_found"}


# --- GET /projects --------------------------------------------------------------------------------


def test_the_list_has_the_projects_i_own_or_am_a_member_of_oldest_first(api, user, api_for):
    mine = ProjectFactory(owner=user, name="mine")
    shared = ProjectFactory(name="shared")
    MembershipFactory(project=shared, user=user, role=Role.VIEWER)
    ProjectFactory(name="not mine")
    ProjectFactory(owner=user, name="deleted", deleted_at="2025-01-01T00:00:00Z")
    later = ProjectFactory(owner=user, name="later")

    response = api.get("/projects")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["projects"]
    assert [p["name"] for p in body["projects"]] == ["mine", "shared", "later"]
    assert set(body["projects"][0]) == PROJECT_FIELDS
    assert body["projects"][0] == api.get(f"/projects/{mine.id}").json()
    assert body["projects"][2]["id"] == str(later.id)


def test_the_list_is_empty_for_someone_without_projects(api_for, project):
    assert api_for(UserFactory()).get("/projects").json() == {"projects": []}


def test_the_list_pages_with_limit_and_offset_in_a_stable_order(api, user):
    created = [str(ProjectFactory(owner=user).id) for _ in range(5)]
    first = api.get("/projects", {"limit": 2})
    assert [p["id"] for p in first.json()["projects"]] == created[:2]
    assert 'rel="next"' in first["Link"] and "offset=2" in first["Link"]
    rest = api.get("/projects", {"limit": 10, "offset": 2})
    assert [p["id"] for p in rest.json()["projects"]] == created[2:]
    assert "Link" not in rest
    assert api.get("/projects", {"limit": 0}).json()["details"][0]["code"] == "invalid_limit"


def test_the_list_costs_the_same_queries_for_few_or_many_rows(api, user, django_assert_max_num_queries):
    def make(n):
        for _ in range(n):
            ProjectFactory(owner=user)
            MembershipFactory(user=user, role=Role.MEMBER)

    make(2)
    api.get("/projects")  # warm the token's last_used_at
    with django_assert_max_num_queries(10) as few:
        assert len(api.get("/projects").json()["projects"]) == 4
    make(30)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(api.get("/projects").json()["projects"]) == 64


# --- PATCH /projects/{id} -------------------------------------------------------------------------


def test_patch_changes_only_the_fields_it_names(api, user):
    project = ProjectFactory(
        owner=user, name="web", description="old", repo_url="https://h/a.git", default_branch="main"
    )
    before = api.get(f"/projects/{project.id}").json()
    response = patch(api, f"/projects/{project.id}", {"description": "new"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == PROJECT_FIELDS
    assert body == {**before, "description": "new", "updated_at": body["updated_at"]}
    assert api.get(f"/projects/{project.id}").json() == body
    project.refresh_from_db()
    assert (project.name, project.description, project.repo_url) == ("web", "new", "https://h/a.git")


def test_patch_every_field_and_clear_the_nullable_ones(api, project):
    response = patch(
        api,
        f"/projects/{project.id}",
        {"name": "renamed", "description": "", "repo_url": None, "default_branch": "dev"},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["name"], body["description"], body["repo_url"], body["default_branch"]) == (
        "renamed",
        "",
        None,
        "dev",
    )
    assert patch(api, f"/projects/{project.id}", {"default_branch": None}).json()["default_branch"] is None


def test_an_empty_patch_changes_nothing(api, project):
    before = api.get(f"/projects/{project.id}").json()
    response = patch(api, f"/projects/{project.id}", {})
    assert response.status_code == 200
    assert response.json() == before


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"name": ""}, "name", "blank"),
        ({"name": None}, "name", "invalid_type"),
        ({"name": 5}, "name", "invalid_type"),
        ({"name": "x" * 101}, "name", "max_length"),
        ({"description": None}, "description", "invalid_type"),
        ({"description": False}, "description", "invalid_type"),
        ({"owner": "someone"}, "owner", "unknown_field"),
        ({"id": str(uuid.uuid4())}, "id", "unknown_field"),
        ({"repo_url": "/etc"}, "repo_url", "invalid_repo_url"),
        ({"repo_url": 1}, "repo_url", "invalid_type"),
        ({"default_branch": "bad branch"}, "default_branch", "invalid_branch"),
    ],
)
def test_patch_validates_as_create_does(api, project, body, field, code):
    before = api.get(f"/projects/{project.id}").json()
    response = patch(api, f"/projects/{project.id}", body)
    assert response.status_code == 400, response.content
    assert response.json()["details"][0]["field"] == field
    assert response.json()["details"][0]["code"] == code
    assert api.get(f"/projects/{project.id}").json() == before


@pytest.mark.parametrize("body", [[], "name", 1, None])
def test_patch_wants_a_json_object(api, project, body):
    response = api.client.generic(
        "PATCH",
        f"/projects/{project.id}",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api.token}",
    )
    assert response.status_code == 400
    assert response.json()["details"][0]["code"] == "invalid_type"


def test_patch_with_a_form_body_is_a_415(api, project):
    response = api.client.generic(
        "PATCH",
        f"/projects/{project.id}",
        "name=x",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Bearer {api.token}",
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_patch_to_a_name_i_already_use_is_a_409(api, user):
    ProjectFactory(owner=user, name="taken")
    project = ProjectFactory(owner=user, name="mine")
    response = patch(api, f"/projects/{project.id}", {"name": "taken", "description": "changed"})
    assert response.status_code == 409
    assert response.json() == {
        "error": "You already have a project named 'taken'.",
        "code": "project_name_taken",
    }
    project.refresh_from_db()
    assert (project.name, project.description) == ("mine", "")


def test_patch_to_its_own_name_or_another_owners_name_is_fine(api, project):
    ProjectFactory(name="theirs")
    assert patch(api, f"/projects/{project.id}", {"name": project.name}).status_code == 200
    assert patch(api, f"/projects/{project.id}", {"name": "theirs"}).json()["name"] == "theirs"


def test_patch_to_the_name_of_a_deleted_project_is_fine(api, user):
    old = ProjectFactory(owner=user, name="old")
    project = ProjectFactory(owner=user, name="new")
    assert delete(api, f"/projects/{old.id}").status_code == 204
    assert patch(api, f"/projects/{project.id}", {"name": "old"}).json()["name"] == "old"


# --- DELETE /projects/{id} ------------------------------------------------------------------------


def test_delete_takes_the_project_and_its_workspaces_out_of_the_api(
    api, user, project, django_capture_on_commit_callbacks
):
    workspaces = [make_workspace(project, status) for status in WorkspaceStatus]
    already_deleted = make_workspace(project, deleted_at="2025-01-01T00:00:00Z")
    elsewhere = make_workspace(ProjectFactory(owner=user))
    assert len(api.get("/workspaces").json()["workspaces"]) == len(workspaces) + 1

    with django_capture_on_commit_callbacks() as callbacks:
        response = delete(api, f"/projects/{project.id}")
    assert response.status_code == 204
    assert response.content == b""
    # One destroy queued (after commit) per live workspace, none for the one already deleted.
    assert len(callbacks) == len(workspaces)

    assert api.get(f"/projects/{project.id}").status_code == 404
    assert [p["id"] for p in api.get("/projects").json()["projects"]] == [str(elsewhere.project_id)]
    assert [w["id"] for w in api.get("/workspaces").json()["workspaces"]] == [str(elsewhere.id)]
    assert api.get(f"/projects/{project.id}/workspaces").status_code == 404
    for workspace in workspaces:
        assert api.get(f"/workspaces/{workspace.id}").status_code == 404
        workspace.refresh_from_db()
        assert workspace.deleted_at is not None  # operators still see the record
        assert WorkspaceEvent.objects.filter(
            workspace=workspace, message__startswith="Deleted while"
        ).exists()
    project.refresh_from_db()
    assert project.deleted_at is not None  # soft-deleted: the rows stay for the workspaces' records
    assert Workspace.objects.filter(project=project).count() == len(workspaces) + 1
    already_deleted.refresh_from_db()
    assert str(already_deleted.deleted_at).startswith("2025-01-01")


def test_a_deleted_project_takes_no_new_workspaces_and_cannot_be_changed(api, project):
    assert delete(api, f"/projects/{project.id}").status_code == 204
    assert api.post(f"/projects/{project.id}/workspaces").status_code == 404
    assert not Workspace.objects.exists()
    assert patch(api, f"/projects/{project.id}", {"name": "again"}).status_code == 404
    assert delete(api, f"/projects/{project.id}").status_code == 404


def test_the_name_of_a_deleted_project_can_be_used_again(api):
    first = api.post("/projects", {"name": "web"}).json()
    assert delete(api, f"/projects/{first['id']}").status_code == 204
    second = api.post("/projects", {"name": "web"})
    assert second.status_code == 201
    assert second.json()["id"] != first["id"]
    assert [p["name"] for p in api.get("/projects").json()["projects"]] == ["web"]


def test_members_no_longer_see_a_deleted_project(people, project):
    make_workspace(project)
    assert delete(people["owner"], f"/projects/{project.id}").status_code == 204
    for who in ("member", "viewer"):
        assert people[who].get(f"/projects/{project.id}").status_code == 404
        assert people[who].get("/projects").json() == {"projects": []}
        assert people[who].get("/workspaces").json() == {"workspaces": []}


def test_delete_is_one_transaction(api, project, monkeypatch):
    """A failure half-way leaves everything as it was: no workspace deleted, the project live."""
    workspaces = [make_workspace(project) for _ in range(2)]
    calls = []

    def workspace_delete_then_fail(*, workspace, actor):
        calls.append(workspace.id)
        original(workspace=workspace, actor=actor)
        if len(calls) == 2:
            raise RuntimeError("boom")

    original = workspace_services.workspace_delete
    monkeypatch.setattr(workspace_services, "workspace_delete", workspace_delete_then_fail)
    api.client.raise_request_exception = False
    assert delete(api, f"/projects/{project.id}").status_code == 500
    assert len(calls) == 2
    assert Workspace.live.filter(project=project).count() == len(workspaces)
    assert api.get(f"/projects/{project.id}").status_code == 200


# --- who may do what ------------------------------------------------------------------------------

PROJECT_MATRIX = {
    "get": {"owner": 200, "member": 200, "viewer": 200, "stranger": 404},
    "patch": {"owner": 200, "member": 403, "viewer": 403, "stranger": 404},
    "delete": {"owner": 204, "member": 403, "viewer": 403, "stranger": 404},
}


@pytest.mark.parametrize("who", ["owner", "member", "viewer", "stranger"])
@pytest.mark.parametrize("method", list(PROJECT_MATRIX))
def test_who_may_do_what_to_a_project(people, project, who, method):
    path = f"/projects/{project.id}"
    caller = people[who]
    if method == "get":
        response = caller.get(path)
    elif method == "patch":
        response = patch(caller, path, {"description": "x"})
    else:
        response = delete(caller, path)
    expected = PROJECT_MATRIX[method][who]
    assert response.status_code == expected, response.content
    if expected == 403:
        assert response.json()["code"] == "permission_denied"
        assert f"'{who}'" in response.json()["error"]
    if expected == 404:
        assert response.json() == {"error": "Project not found.", "code": "not_found"}
    if expected >= 400:
        project.refresh_from_db()
        assert (project.description, project.deleted_at) == ("", None)


@pytest.mark.parametrize("who", ["owner", "member", "viewer", "stranger"])
def test_who_sees_a_project_in_the_list(people, project, who):
    ids = [p["id"] for p in people[who].get("/projects").json()["projects"]]
    assert ids == ([] if who == "stranger" else [str(project.id)])


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_a_non_uuid_or_unknown_project_is_a_404_for_writes(api, method):
    for project_id in ("12345", uuid.uuid4()):
        path = f"/projects/{project_id}"
        response = patch(api, path, {"name": "x"}) if method == "patch" else delete(api, path)
        assert response.status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/projects"), ("patch", "/projects/{id}"), ("delete", "/projects/{id}")],
)
def test_every_project_endpoint_needs_a_token(anonymous, project, method, path):
    response = getattr(anonymous.client, method)(path.format(id=project.id))
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


# --- the schema -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "method", "operation_id", "statuses"),
    [
        ("/projects", "get", "projects_list", {"200", "400", "401", "429"}),
        (
            "/projects/{id}",
            "patch",
            "projects_partial_update",
            {"200", "400", "401", "403", "404", "409", "412", "415", "429", "413"},
        ),
        ("/projects/{id}", "get", "projects_retrieve", {"200", "401", "404", "429"}),
        ("/projects/{id}", "delete", "projects_destroy", {"204", "401", "403", "404", "412", "429"}),
        ("/projects/{id}/members", "get", "project_members_list", {"200", "400", "401", "404", "429"}),
        (
            "/projects/{id}/members",
            "post",
            "project_members_create",
            {"201", "400", "401", "403", "404", "409", "415", "422", "429", "413"},
        ),
        (
            "/projects/{id}/members/{user_id}",
            "patch",
            "project_members_partial_update",
            {"200", "400", "401", "403", "404", "412", "415", "429", "413"},
        ),
        ("/projects/{id}/members/{user_id}", "get", "project_members_retrieve", {"200", "401", "404", "429"}),
        (
            "/projects/{id}/members/{user_id}",
            "delete",
            "project_members_destroy",
            {"204", "401", "403", "404", "409", "412", "429"},
        ),
        (
            "/projects/{id}/invitations",
            "get",
            "project_invitations_list",
            {"200", "400", "401", "403", "404", "429"},
        ),
        (
            "/projects/{id}/invitations/{invitation_id}",
            "get",
            "project_invitations_retrieve",
            {"200", "401", "403", "404", "429"},
        ),
        (
            "/projects/{id}/invitations/{invitation_id}",
            "delete",
            "project_invitations_destroy",
            {"204", "401", "403", "404", "412", "429"},
        ),
        ("/invitations", "get", "invitations_list", {"200", "400", "401", "429"}),
        (
            "/invitations/{invitation_id}/accept",
            "post",
            "invitations_accept",
            {"201", "400", "401", "404", "409", "422", "429", "413"},
        ),
        (
            "/invitations/{invitation_id}/decline",
            "post",
            "invitations_decline",
            {"204", "400", "401", "404", "422", "429", "413"},
        ),
    ],
)
def test_the_schema_documents_every_project_operation(client, path, method, operation_id, statuses):
    operation = client.get("/openapi.json").json()["paths"][path][method]
    assert operation["operationId"] == operation_id
    assert operation["tags"] == ["Projects"]
    # Every operation may also be refused for its size by the web server (config/operations/gunicorn_errors.py),
    # and answers 406 to an Accept header without JSON.
    statuses = statuses | {"406", "414", "431"}
    assert set(operation["responses"]) == statuses
    for status in statuses - {"200", "201", "204"}:
        schema = operation["responses"][status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ApiError"}, status
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            assert parameter["schema"] == {"type": "string", "format": "uuid"}
