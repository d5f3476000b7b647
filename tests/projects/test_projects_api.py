import uuid

import pytest
from django.test import override_settings

from projects.models import Project, Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_create_a_project(api, user):
    response = api.post(
        "/projects", {"name": "web", "description": "the site", "repo_url": "https://github.com/a/b.git"}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {
        "id",
        "name",
        "description",
        "repo_url",
        "default_branch",
        "created_at",
        "updated_at",
    }
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
