"""Operators get what their Django permissions say, and no more: "view" reads the console, "change"
moves workspaces (start, stop, retry, force to error, mark a drift error) and revokes tokens, "delete"
destroys. An action an operator may not run is not offered, and posting it anyway is a 403 that
changes nothing."""

import uuid

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from accounts.models import ApiToken, User
from accounts.services import user_create
from projects.models import Project
from tests.conftest import Api
from tests.factories import ProjectFactory, UserFactory, make_token
from tests.test_admin import make_workspace
from workspaces.drivers import MachineSpec
from workspaces.hardware import Hardware
from workspaces.models import ActorKind, Workspace, WorkspaceEvent
from workspaces.models import WorkspaceStatus as S

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/workspaces/workspace/"
ORPHANS = "/admin/workspaces/workspace/orphans/"

# Each workspace action, a state it may start from, and what it posts besides its name.
ACTIONS = {
    "retry_provisioning": (S.ERROR, {}),
    "start": (S.STOPPED, {}),
    "stop": (S.RUNNING, {}),
    "destroy": (S.RUNNING, {}),
    "force_error": (S.RUNNING, {"apply": "yes", "reason": "because I can"}),
}


def staff_with(*perms: str) -> tuple[Client, User]:
    """A logged-in staff user (not superuser) holding exactly ``perms`` ("app.codename")."""
    user = user_create(email=f"ops-{uuid.uuid4().hex[:8]}@example.com", password="x", is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    client = Client()
    client.force_login(user)
    return client, user


def post_action(client, action, *objects, url=CHANGELIST + "?deleted=all", **extra):
    return client.post(url, {"action": action, "_selected_action": [str(o.pk) for o in objects], **extra})


def snapshot(workspace):
    workspace = Workspace.objects.get(pk=workspace.pk)
    return (workspace.status, workspace.deleted_at, workspace.error_message)


@pytest.mark.parametrize("action", ACTIONS)
def test_a_view_only_operator_cannot_run_a_workspace_action(action):
    client, _ = staff_with("workspaces.view_workspace")
    status, extra = ACTIONS[action]
    workspace = make_workspace(status=status, machine_id="m-1", provisioned_at=timezone.now())
    before = snapshot(workspace)

    response = post_action(client, action, workspace, **extra)

    assert response.status_code == 403
    assert snapshot(workspace) == before
    assert not WorkspaceEvent.objects.filter(workspace=workspace).exists()
    assert not LogEntry.objects.exists()


def test_a_view_only_operator_reads_the_console_but_is_offered_no_action():
    client, _ = staff_with("workspaces.view_workspace")
    workspace = make_workspace(status=S.RUNNING)

    page = client.get(CHANGELIST).content.decode()
    assert str(workspace.id) in page
    assert 'name="action"' not in page
    for action in ACTIONS:
        assert f'value="{action}"' not in page
    page = client.get(f"{CHANGELIST}{workspace.pk}/change/").content.decode()
    assert str(workspace.id) in page and 'id="workspace-actions"' not in page


def test_change_moves_workspaces_but_does_not_destroy_them():
    client, operator = staff_with("workspaces.view_workspace", "workspaces.change_workspace")
    running = make_workspace(status=S.RUNNING, machine_id="m-1", provisioned_at=timezone.now())
    page = client.get(CHANGELIST).content.decode()
    assert 'value="stop"' in page and 'value="destroy"' not in page

    assert post_action(client, "destroy", running).status_code == 403
    assert Workspace.objects.get(pk=running.pk).deleted_at is None

    assert post_action(client, "stop", running).status_code == 302
    assert Workspace.objects.get(pk=running.pk).status == S.STOPPING


def test_delete_destroys_but_does_not_move_workspaces():
    client, operator = staff_with("workspaces.view_workspace", "workspaces.delete_workspace")
    stopped = make_workspace(status=S.STOPPED, machine_id="m-1", provisioned_at=timezone.now())
    page = client.get(CHANGELIST).content.decode()
    assert 'value="destroy"' in page and 'value="stop"' not in page
    # Django's own hard delete stays off: rows are kept with their fate.
    assert 'value="delete_selected"' not in page

    assert post_action(client, "start", stopped).status_code == 403
    assert Workspace.objects.get(pk=stopped.pk).status == S.STOPPED

    assert post_action(client, "destroy", stopped).status_code == 302
    assert Workspace.objects.get(pk=stopped.pk).deleted_at is not None


CHANGES = [(action, status, extra) for action, (status, extra) in ACTIONS.items()] + [
    ("retry_provisioning", S.CREATING, {}),
    ("force_error", S.STARTING, {"apply": "yes", "reason": "wedged"}),  # never ran: destroyed too
    ("destroy", S.ERROR, {}),
]


@pytest.mark.parametrize(("action", "status", "extra"), CHANGES, ids=[f"{a}-{s}" for a, s, _ in CHANGES])
def test_every_event_an_action_records_names_the_operator(action, status, extra):
    client, operator = staff_with(
        "workspaces.view_workspace", "workspaces.change_workspace", "workspaces.delete_workspace"
    )
    provisioned = timezone.now() if status != S.STARTING else None
    workspace = make_workspace(status=status, machine_id="m-1", provisioned_at=provisioned)

    assert post_action(client, action, workspace, **extra).status_code == 302

    events = list(WorkspaceEvent.objects.filter(workspace=workspace))
    assert events, "the action is on the timeline"
    assert {(e.actor_kind, e.actor_user_id) for e in events} == {(ActorKind.OPERATOR, operator.pk)}


# --- orphans and drift -------------------------------------------------------------------------------------


@pytest.fixture
def orphan(local_machines):
    workspace_id = str(uuid.uuid4())
    local_machines.create(MachineSpec(workspace_id=workspace_id, hardware=Hardware("shared", 1, 256, 1)))
    return workspace_id


@pytest.fixture
def drifted():
    return make_workspace(status=S.RUNNING, machine_id="m-gone", provisioned_at=timezone.now())


def test_a_view_only_operator_sees_orphans_and_drift_without_buttons_and_cannot_post(
    orphan, drifted, local_machines
):
    client, _ = staff_with("workspaces.view_workspace")

    page = client.get(ORPHANS).content.decode()
    assert orphan in page and str(drifted.id) in page
    assert 'value="Destroy"' not in page and 'value="Mark error"' not in page

    assert client.post(ORPHANS, {"action": "destroy", "workspace_id": orphan}).status_code == 403
    assert client.post(ORPHANS, {"action": "mark_error", "workspace_id": str(drifted.id)}).status_code == 403
    assert client.post(ORPHANS, {"action": "other", "workspace_id": str(drifted.id)}).status_code == 403
    assert local_machines.find(orphan) is not None
    assert snapshot(drifted)[0] == S.RUNNING


def test_marking_a_drift_error_needs_change_and_destroying_an_orphan_needs_delete(
    orphan, drifted, local_machines
):
    changer, operator = staff_with("workspaces.view_workspace", "workspaces.change_workspace")
    page = changer.get(ORPHANS).content.decode()
    assert 'value="Mark error"' in page and 'value="Destroy"' not in page
    assert changer.post(ORPHANS, {"action": "destroy", "workspace_id": orphan}).status_code == 403
    assert local_machines.find(orphan) is not None
    changer.post(ORPHANS, {"action": "mark_error", "workspace_id": str(drifted.id)})
    assert snapshot(drifted)[0] == S.ERROR
    [event] = WorkspaceEvent.objects.filter(workspace=drifted)
    assert (event.actor_kind, event.actor_user) == (ActorKind.OPERATOR, operator)

    deleter, _ = staff_with("workspaces.view_workspace", "workspaces.delete_workspace")
    assert 'value="Destroy"' in deleter.get(ORPHANS).content.decode()
    deleter.post(ORPHANS, {"action": "destroy", "workspace_id": orphan})
    assert local_machines.find(orphan) is None


def test_the_orphans_page_needs_at_least_view():
    client, _ = staff_with("projects.view_project")
    assert client.get(ORPHANS).status_code == 403


# --- tokens, users, projects ---------------------------------------------------------------------------------


def test_revoking_a_token_needs_change_apitoken():
    owner = UserFactory()
    secret = make_token(owner)
    token = ApiToken.objects.get(user=owner)

    viewer, _ = staff_with("accounts.view_apitoken")
    assert 'value="revoke"' not in viewer.get("/admin/accounts/apitoken/").content.decode()
    assert post_action(viewer, "revoke", token, url="/admin/accounts/apitoken/").status_code == 403
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None
    assert Api(secret).get("/profile").status_code == 200

    changer, _ = staff_with("accounts.view_apitoken", "accounts.change_apitoken")
    assert post_action(changer, "revoke", token, url="/admin/accounts/apitoken/").status_code == 302
    assert Api(secret).get("/profile").status_code == 401


def test_a_view_only_operator_cannot_delete_projects_or_users():
    project = ProjectFactory()
    someone = UserFactory()
    client, _ = staff_with("projects.view_project", "accounts.view_user")

    page = client.get("/admin/projects/project/").content.decode()
    assert project.name in page and 'value="delete_selected"' not in page
    response = post_action(client, "delete_selected", project, url="/admin/projects/project/", post="yes")
    assert response.status_code == 403
    response = post_action(client, "delete_selected", someone, url="/admin/accounts/user/", post="yes")
    assert response.status_code == 403
    assert Project.objects.filter(pk=project.pk).exists() and User.objects.filter(pk=someone.pk).exists()
    assert client.post(f"/admin/projects/project/{project.pk}/change/", {"name": "x"}).status_code == 403
    assert Project.objects.get(pk=project.pk).name == project.name


@pytest.mark.parametrize(
    ("url", "selected"),
    [(CHANGELIST, "not-a-uuid"), ("/admin/accounts/apitoken/", "abc"), ("/admin/projects/project/", "1'")],
)
def test_a_forged_selection_is_a_400(url, selected):
    client, _ = staff_with(
        "workspaces.change_workspace", "accounts.change_apitoken", "projects.delete_project"
    )
    action = {CHANGELIST: "start", "/admin/accounts/apitoken/": "revoke"}.get(url, "delete_selected")
    response = client.post(url, {"action": action, "_selected_action": [selected]})
    assert response.status_code == 400


# --- who may grant what ------------------------------------------------------------------------------------


def form_fields(page: str) -> dict:
    """The named inputs of an admin change form with their values, as a browser would post them."""
    from html.parser import HTMLParser

    fields = {}

    class Inputs(HTMLParser):
        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "input" and attrs.get("name") and attrs.get("type") not in ("submit", "checkbox"):
                fields[attrs["name"]] = attrs.get("value") or ""
            if tag == "input" and attrs.get("type") == "checkbox" and "checked" in attrs:
                fields[attrs["name"]] = "on"

    Inputs().feed(page)
    return fields


def test_change_user_does_not_let_an_operator_grant_privileges_or_take_over_a_superuser():
    client, operator = staff_with("accounts.view_user", "accounts.change_user")
    root = user_create(email="root@example.com", password="x", is_staff=True, is_superuser=True)

    page = client.get(f"/admin/accounts/user/{operator.pk}/change/").content.decode()
    assert 'name="email"' in page
    for field in ("is_superuser", "is_staff", "user_permissions", "groups"):
        assert f'name="{field}"' not in page, field
    # Posting the fields anyway (a forged form) changes nothing.
    data = form_fields(page)
    data.update({"is_superuser": "on", "is_staff": "on", "display_name": "still me"})
    response = client.post(f"/admin/accounts/user/{operator.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    operator.refresh_from_db()
    assert operator.display_name == "still me" and not operator.is_superuser
    # A superuser's account (and its password) is out of reach.
    assert client.get(f"/admin/accounts/user/{root.pk}/password/").status_code == 403
    response = client.post(
        f"/admin/accounts/user/{root.pk}/password/",
        {"password1": "n3w-pass-word!", "password2": "n3w-pass-word!", "usable_password": "true"},
    )
    assert response.status_code == 403
    root.refresh_from_db()
    assert root.check_password("x")
    # Groups carry permissions: only superusers make or edit them.
    assert client.get("/admin/auth/group/add/").status_code == 403


def test_a_superuser_still_grants_privileges(client):
    root = user_create(email="root@example.com", password="x", is_staff=True, is_superuser=True)
    client.force_login(root)
    someone = UserFactory()
    page = client.get(f"/admin/accounts/user/{someone.pk}/change/").content.decode()
    assert 'name="is_superuser"' in page and 'name="user_permissions"' in page
    assert client.get("/admin/auth/group/add/").status_code == 200
