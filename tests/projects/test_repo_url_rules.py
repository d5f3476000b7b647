"""What a project's repo_url may point at (SSRF through repo_url, admin edits skipping the
rules). The API refuses a host written as an internal address, in any of the forms a resolver reads;
names are checked when the clone resolves them (tests/workspaces/test_clone_isolation.py). The admin
applies the same rules to operators' edits."""

import pytest

from accounts.services import user_create
from projects.models import Project
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

REFUSED = [
    ("http://127.0.0.1:6379/", "127.0.0.1", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link-local"),
    ("http://0x7f000001:8080/x.git", "127.0.0.1", "loopback"),
    ("http://2130706433/x.git", "127.0.0.1", "loopback"),
    ("http://127.1/x.git", "127.0.0.1", "loopback"),
    ("http://0177.0.0.1/x.git", "127.0.0.1", "loopback"),
    ("https://10.0.0.5/org/repo.git", "10.0.0.5", "private"),
    ("https://192.168.1.10/org/repo.git", "192.168.1.10", "private"),
    ("git://100.64.0.1/repo.git", "100.64.0.1", "shared address space"),
    ("ssh://git@0.0.0.0/repo.git", "0.0.0.0", "unspecified"),  # noqa: S104 (a URL, not a bind)
    ("git@172.16.0.1:org/repo.git", "172.16.0.1", "private"),
    ("http://224.0.0.1/x.git", "224.0.0.1", "multicast"),
    ("http://240.0.0.1/x.git", "240.0.0.1", "reserved"),
    ("http://localhost:5432/x.git", "127.0.0.1", "loopback"),
]


@pytest.fixture(autouse=True)
def no_allowed_networks(settings):
    # The test settings allow loopback (tests clone from local servers); a deployment allows nothing.
    settings.EGRESS_ALLOWED_NETWORKS = []


@pytest.mark.parametrize(("repo_url", "address", "reason"), REFUSED)
def test_an_internal_address_is_refused_at_create_in_the_error_format(api, repo_url, address, reason):
    response = api.post("/projects", {"name": "a", "repo_url": repo_url})

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    [detail] = body["details"]
    assert (detail["field"], detail["code"]) == ("repo_url", "egress_refused")
    assert f"the address {address} is not allowed ({reason})" in detail["message"]
    assert not Project.objects.exists()


def test_an_internal_address_is_refused_at_patch_and_nothing_changes(api, user):
    project = ProjectFactory(owner=user, repo_url="https://git.example.com/org/repo.git")

    response = api.client.patch(
        f"/projects/{project.id}",
        {"repo_url": "http://[::ffff:127.0.0.1]/x.git"},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {api.token}",
    )
    assert response.status_code == 400  # brackets are not in the pattern: refused as invalid
    response = api.client.patch(
        f"/projects/{project.id}",
        {"repo_url": "http://169.254.169.254/latest/"},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {api.token}",
    )

    assert response.status_code == 400
    assert response.json()["details"][0]["code"] == "egress_refused"
    project.refresh_from_db()
    assert project.repo_url == "https://git.example.com/org/repo.git"


@pytest.mark.parametrize(
    "repo_url",
    ["https://github.com/org/repo.git", "git@gitlab.com:org/repo.git", "https://8.8.8.8/org/repo.git"],
)
def test_public_addresses_and_names_are_accepted_without_resolving_them(api, repo_url):
    assert api.post("/projects", {"name": "a", "repo_url": repo_url}).status_code == 201


def test_an_operator_can_allow_an_internal_network(api, settings):
    settings.EGRESS_ALLOWED_NETWORKS = ["10.20.0.0/16"]

    assert api.post("/projects", {"name": "a", "repo_url": "https://10.20.3.4/r.git"}).status_code == 201
    assert api.post("/projects", {"name": "b", "repo_url": "https://10.21.3.4/r.git"}).status_code == 400


# --- The admin: the same rules for operators' edits -----------------------------------------------


@pytest.fixture
def operator(client):
    staff = user_create(
        email="ops@example.com", password="s3cret-pass-word", is_staff=True, is_superuser=True
    )
    client.force_login(staff)
    return client


def change_form(project, **changes):
    """The change form's fields as a browser posts them (the membership inline empty)."""
    data = {
        "owner": str(project.owner_id),
        "name": project.name,
        "description": project.description,
        "repo_url": project.repo_url or "",
        "default_branch": project.default_branch or "",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("repo_url", "/some/host/dir", "repo_url must be a git URL"),
        ("repo_url", "file:///etc", "repo_url must be a git URL"),
        ("repo_url", "http://127.0.0.1:6379/", "the address 127.0.0.1 is not allowed (loopback)"),
        ("default_branch", "--upload-pack=x", "default_branch is not a valid git branch name"),
    ],
)
def test_an_operator_cannot_save_what_the_api_refuses(operator, field, value, message):
    project = ProjectFactory(repo_url="https://git.example.com/org/repo.git", default_branch="main")
    url = f"/admin/projects/project/{project.id}/change/"
    assert operator.get(url).status_code == 200

    response = operator.post(url, change_form(project, **{field: value}))

    assert response.status_code == 200  # the form again, not a redirect to the list
    assert message in response.content.decode()
    assert response.context["adminform"].form.errors[field]
    project.refresh_from_db()
    assert (project.repo_url, project.default_branch) == ("https://git.example.com/org/repo.git", "main")


def test_an_operator_can_save_a_valid_change(operator):
    project = ProjectFactory(repo_url="https://git.example.com/org/repo.git", default_branch="main")

    response = operator.post(
        f"/admin/projects/project/{project.id}/change/",
        change_form(project, repo_url="https://git.example.com/org/other.git", default_branch=""),
    )

    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.repo_url, project.default_branch) == ("https://git.example.com/org/other.git", None)
