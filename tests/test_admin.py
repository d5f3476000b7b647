"""The admin as operators use it: find workspaces, read their state and errors, manage tokens."""

import re

import pytest

from accounts.models import ApiToken
from accounts.services import user_create
from tests.conftest import Api
from tests.factories import ProjectFactory, UserFactory, WorkspaceFactory
from workspaces.models import Workspace, WorkspaceStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    staff = user_create(
        email="ops@example.com", password="s3cret-pass-word", is_staff=True, is_superuser=True
    )
    client.force_login(staff)
    return client


def make_workspace(**fields):
    return WorkspaceFactory(**{"cpus": 2, "memory_mb": 2048, "volume_size_gb": 10, **fields})


def test_the_admin_is_for_staff_only(client, user):
    assert client.get("/admin/workspaces/workspace/").status_code == 302
    client.force_login(user)
    assert client.get("/admin/workspaces/workspace/").status_code == 302


def test_the_workspace_list_shows_status_error_hardware_owner_and_machine(operator):
    broken = make_workspace(
        status=WorkspaceStatus.ERROR, error_message="Could not clone https://x/y.git: not found"
    )
    running = make_workspace(
        status=WorkspaceStatus.RUNNING, machine_id="abc123def45678", private_ip="127.1.0.9"
    )
    page = operator.get("/admin/workspaces/workspace/").content.decode()
    for text in [
        str(broken.id),
        "Could not clone https://x/y.git",
        broken.created_by.email,
        broken.project.name,
        "2×shared / 2 GB / 10 GB",
        "abc123def45678",
        "127.1.0.9",
        "running",
        "error",
    ]:
        assert text in page, text
    assert str(running.id) in page


@pytest.mark.parametrize(
    "term",
    ["abc123def45678", "127.1.0.9", "ops-project", "owner@example.com", "{id}"],
    ids=lambda t: t.strip("{}"),
)
def test_find_a_workspace_by_machine_id_ip_project_owner_or_id(operator, term):
    owner = UserFactory(email="owner@example.com")
    target = make_workspace(
        project=ProjectFactory(owner=owner, name="ops-project"),
        machine_id="abc123def45678",
        private_ip="127.1.0.9",
    )
    other = make_workspace()
    page = operator.get("/admin/workspaces/workspace/", {"q": term.format(id=target.id)}).content.decode()
    assert f"/admin/workspaces/workspace/{target.id}/change/" in page
    assert f"/admin/workspaces/workspace/{other.id}/change/" not in page


def test_filter_by_status(operator):
    broken = make_workspace(status=WorkspaceStatus.ERROR)
    fine = make_workspace(status=WorkspaceStatus.RUNNING)
    page = operator.get("/admin/workspaces/workspace/", {"status__exact": "error"}).content.decode()
    assert str(broken.id) in page and str(fine.id) not in page


def test_the_list_costs_the_same_queries_for_few_or_many_rows(operator, django_assert_max_num_queries):
    for _ in range(3):
        make_workspace()
    with django_assert_max_num_queries(12) as few:
        operator.get("/admin/workspaces/workspace/")
    for _ in range(30):
        make_workspace()
    with django_assert_max_num_queries(len(few.captured_queries)):
        operator.get("/admin/workspaces/workspace/")


def test_a_workspace_page_shows_the_full_error_and_the_timeline(operator, api, project):
    created = api.post(f"/projects/{project.id}/workspaces").json()
    Workspace.objects.filter(pk=created["id"]).update(status="error", error_message="A long reason " * 20)
    page = operator.get(f"/admin/workspaces/workspace/{created['id']}/change/").content.decode()
    assert ("A long reason " * 20).strip() in page
    assert "Workspace created; provisioning queued." in page
    # provider fields are shown, not editable
    assert 'name="machine_id"' not in page and 'name="private_ip"' not in page


def test_a_token_made_in_the_admin_is_shown_once_and_works(operator, user):
    response = operator.post(
        "/admin/accounts/apitoken/add/",
        {"user": str(user.pk), "name": "from admin", "expires_at_0": "", "expires_at_1": ""},
    )
    # The answer to the POST itself shows it: no redirect that would have to carry it somewhere.
    assert response.status_code == 200
    page = response.content.decode()
    [secret] = re.findall(r"wsk_[A-Za-z0-9]{12}_[A-Za-z0-9]{40}", page)
    assert Api(secret).post("/projects", {"name": "p"}).status_code == 201
    token = ApiToken.objects.get(name="from admin")
    later = operator.get(f"/admin/accounts/apitoken/{token.pk}/change/").content.decode()
    assert secret not in later
    assert token.prefix in later


def test_a_token_made_in_the_admin_never_travels_in_a_cookie_or_the_session(operator, user):
    """Messages live in a signed, unencrypted cookie (or the session): the secret must not be one."""
    from django.contrib.sessions.models import Session

    response = operator.post(
        "/admin/accounts/apitoken/add/",
        {"user": str(user.pk), "name": "from admin", "expires_at_0": "", "expires_at_1": ""},
    )
    secret = re.search(r"wsk_[A-Za-z0-9]{12}_[A-Za-z0-9]{40}", response.content.decode()).group(0)
    key_part = secret.split("_")[2]  # the part after the public prefix
    for name, morsel in response.cookies.items():
        assert key_part not in morsel.value, name
    for session in Session.objects.all():
        assert key_part not in str(session.get_decoded())
    # Nothing waits to be shown on the next page either.
    assert secret not in operator.get("/admin/accounts/apitoken/").content.decode()


def test_revoking_a_token_in_the_admin(operator, user):
    from tests.factories import make_token

    secret = make_token(user)
    token = ApiToken.objects.get(user=user)
    operator.post("/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [str(token.pk)]})
    assert Api(secret).post("/projects", {"name": "p"}).status_code == 401


def test_projects_show_their_members(operator):
    from tests.factories import MembershipFactory

    membership = MembershipFactory(user=UserFactory(email="member@example.com"))
    page = operator.get(f"/admin/projects/project/{membership.project.pk}/change/").content.decode()
    assert "member@example.com" in page or str(membership.user.pk) in page


def test_users_are_searchable_by_email(operator):
    UserFactory(email="findme@example.com")
    assert "findme@example.com" in operator.get("/admin/accounts/user/", {"q": "findme"}).content.decode()


def test_deleted_workspaces_are_hidden_by_default_and_one_filter_away(operator):
    from django.utils import timezone

    live = make_workspace()
    gone = make_workspace(deleted_at=timezone.now())
    default = operator.get("/admin/workspaces/workspace/").content.decode()
    assert str(live.id) in default and str(gone.id) not in default
    deleted = operator.get("/admin/workspaces/workspace/", {"deleted": "yes"}).content.decode()
    assert str(gone.id) in deleted and str(live.id) not in deleted


def test_an_operator_sets_a_quota_override_and_sees_current_use(operator):
    from django.test import override_settings

    from accounts.models import UserQuota

    owner = UserFactory(email="quota@example.com")
    make_workspace(project=ProjectFactory(owner=owner))
    UserQuota.objects.create(user=owner, max_workspaces=3)
    with override_settings(
        WORKSPACE_QUOTA_DEFAULTS={
            "max_workspaces": 20,
            "max_vcpus": 32,
            "max_memory_mb": 65536,
            "max_volume_gb": 1000,
        }
    ):
        page = operator.get(f"/admin/accounts/user/{owner.pk}/change/").content.decode()
    assert "workspaces: 1 / 3" in page
    assert "vcpus: 2 / 32" in page


@pytest.mark.parametrize(
    "url",
    [
        "/admin/workspaces/workspace/?status__exact=%00",
        "/admin/workspaces/workspace/?q=%00",
        "/admin/workspaces/workspace/?q=abc%00def",
        "/admin/workspaces/workspace/?driver__exact=local&cpu_kind__exact=%00",
        "/admin/workspaces/workspace/?%00=1",
        "/admin/accounts/apitoken/?q=%00",
        "/admin/accounts/user/?q=%00",
        "/admin/projects/project/?q=%00",
        "/admin/workspaces/workspace/orphans/?x=%00",
    ],
)
def test_a_nul_in_an_admin_query_is_a_400_not_a_500(operator, url):
    """PostgreSQL refuses NUL in a text parameter: a filter or search carrying one was a 500 there."""
    make_workspace(status=WorkspaceStatus.RUNNING)
    response = operator.get(url)
    assert response.status_code == 400
    assert "NUL" in response.content.decode()


def test_a_nul_in_admin_form_data_is_a_400_and_saves_nothing(operator):
    from tests.factories import ProjectFactory

    project = ProjectFactory(name="before")
    response = operator.post(
        "/admin/workspaces/workspace/", {"action": "start", "_selected_action": ["\x00"]}
    )
    assert response.status_code == 400
    response = operator.post(f"/admin/projects/project/{project.pk}/change/", {"name": "a\x00b"})
    assert response.status_code == 400
    project.refresh_from_db()
    assert project.name == "before"


def test_the_admin_login_refuses_a_nul_with_a_400(client):
    response = client.post("/admin/login/", {"username": "ops\x00@example.com", "password": "x"})
    assert response.status_code == 400


def test_filters_and_search_without_nul_still_work(operator):
    running = make_workspace(status=WorkspaceStatus.RUNNING)
    page = operator.get("/admin/workspaces/workspace/", {"status__exact": "running", "q": ""})
    assert page.status_code == 200 and str(running.id) in page.content.decode()
