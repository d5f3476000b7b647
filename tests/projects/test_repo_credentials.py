"""Repository credentials: a repo_url's user:password@ or token@ is stored for
the clone and never shown again, to any role, in the API or the admin."""

import pytest
from django.contrib.auth.models import Permission

from accounts.services import user_create
from projects.models import Project
from tests.factories import MembershipFactory, ProjectFactory

pytestmark = pytest.mark.django_db

SECRET_URL = "https://alice:s3cret-pw@git.example.com/team/app.git"
SHOWN = "https://alice:***@git.example.com/team/app.git"
TOKEN_URL = "https://ghp_t0kenvalue@github.com/team/app.git"


def patch(api, path, data):
    return api.client.patch(path, data, format="json", HTTP_AUTHORIZATION=f"Bearer {api.token}")


@pytest.fixture
def secret_project(user):
    return ProjectFactory(owner=user, repo_url=SECRET_URL)


@pytest.mark.parametrize("role", ["owner", "member", "viewer"])
def test_no_role_reads_the_credential(api, api_for, secret_project, role):
    caller = api if role == "owner" else api_for(MembershipFactory(project=secret_project, role=role).user)
    for response in (caller.get(f"/projects/{secret_project.id}"), caller.get("/projects")):
        assert response.status_code == 200
        assert "s3cret-pw" not in response.content.decode()
    assert caller.get(f"/projects/{secret_project.id}").json()["repo_url"] == SHOWN
    secret_project.refresh_from_db()
    assert secret_project.repo_url == SECRET_URL  # the clone still has it


def test_a_token_in_the_user_name_is_masked_whole(api):
    created = api.post("/projects", {"name": "t", "repo_url": TOKEN_URL})
    assert created.status_code == 201, created.content
    assert created.json()["repo_url"] == "https://***@github.com/team/app.git"
    assert Project.objects.get(pk=created.json()["id"]).repo_url == TOKEN_URL
    assert "ghp_t0kenvalue" not in api.get("/projects").content.decode()


def test_sending_the_masked_url_back_keeps_the_stored_credential(api, secret_project):
    path = f"/projects/{secret_project.id}"
    body = api.get(path).json()
    response = patch(api, path, {"repo_url": body["repo_url"], "description": "read, changed, sent back"})
    assert response.status_code == 200, response.content
    assert response.json()["repo_url"] == SHOWN
    secret_project.refresh_from_db()
    assert (secret_project.repo_url, secret_project.description) == (SECRET_URL, "read, changed, sent back")


def test_a_new_credential_or_none_replaces_the_stored_one(api, secret_project):
    path = f"/projects/{secret_project.id}"
    assert (
        patch(api, path, {"repo_url": "https://alice:n3w-pw@git.example.com/team/app.git"}).status_code == 200
    )
    secret_project.refresh_from_db()
    assert secret_project.repo_url == "https://alice:n3w-pw@git.example.com/team/app.git"
    assert patch(api, path, {"repo_url": "https://git.example.com/team/app.git"}).status_code == 200
    secret_project.refresh_from_db()
    assert secret_project.repo_url == "https://git.example.com/team/app.git"


def test_a_masked_url_that_is_not_the_stored_ones_is_refused(api, secret_project):
    # "***" is no password anyone has: only the exact masked form of the stored URL means "keep it".
    response = patch(
        api, f"/projects/{secret_project.id}", {"repo_url": "https://bob:***@git.example.com/x.git"}
    )
    assert response.status_code == 400
    assert response.json()["details"][0]["code"] == "invalid_repo_url"
    secret_project.refresh_from_db()
    assert secret_project.repo_url == SECRET_URL


# --- the admin ------------------------------------------------------------------------------------


def _staff(client, *, superuser=True, permissions=()):
    staff = user_create(
        email="ops@example.com", password="s3cret-pass-word", is_staff=True, is_superuser=superuser
    )
    staff.user_permissions.add(*Permission.objects.filter(codename__in=permissions))
    client.force_login(staff)
    return client


def test_the_admin_list_and_change_page_never_show_the_credential(client, secret_project):
    operator = _staff(client)
    listing = operator.get("/admin/projects/project/").content.decode()
    assert "s3cret-pw" not in listing and SHOWN in listing
    page = operator.get(f"/admin/projects/project/{secret_project.pk}/change/").content.decode()
    assert "s3cret-pw" not in page and SHOWN in page


def test_a_view_only_operator_does_not_see_the_credential_either(client, secret_project):
    operator = _staff(client, superuser=False, permissions=["view_project"])
    page = operator.get(f"/admin/projects/project/{secret_project.pk}/change/")
    assert page.status_code == 200
    assert "s3cret-pw" not in page.content.decode() and SHOWN in page.content.decode()


def _form(project, **changes):
    data = {
        "owner": str(project.owner_id),
        "name": project.name,
        "description": project.description,
        "repo_url": SHOWN,
        "default_branch": project.default_branch or "",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    return {**data, **changes}


def test_saving_the_admin_form_keeps_the_stored_credential(client, secret_project):
    operator = _staff(client)
    url = f"/admin/projects/project/{secret_project.pk}/change/"
    response = operator.post(url, _form(secret_project, description="edited by an operator"))
    assert response.status_code == 302, response.content.decode()[:2000]
    secret_project.refresh_from_db()
    assert (secret_project.repo_url, secret_project.description) == (SECRET_URL, "edited by an operator")
    # A whole new URL replaces it.
    new = "https://alice:an0ther@git.example.com/team/app.git"
    assert operator.post(url, _form(secret_project, repo_url=new)).status_code == 302
    secret_project.refresh_from_db()
    assert secret_project.repo_url == new
