"""The operator console's actions: each calls the service the API calls, is on the timeline with the
operator as actor (and in Django's history), and refuses clearly when the state does not allow it."""

import uuid
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.utils import timezone

from accounts.services import user_create
from tests.factories import UserFactory
from tests.test_admin import make_workspace
from workspaces.drivers import MachineSpec
from workspaces.hardware import Hardware
from workspaces.models import ActorKind, Workspace, WorkspaceEvent
from workspaces.models import WorkspaceStatus as S

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/workspaces/workspace/"
ORPHANS = "/admin/workspaces/workspace/orphans/"


@pytest.fixture
def staff(db):
    return user_create(
        email="oncall@example.com", password="s3cret-pass-word", is_staff=True, is_superuser=True
    )


@pytest.fixture
def operator(client, staff):
    client.force_login(staff)
    return client


def run_action(operator, action, workspace, **extra):
    response = operator.post(
        CHANGELIST + "?deleted=all",
        {"action": action, "_selected_action": [str(workspace.pk)], **extra},
        follow=True,
    )
    assert response.status_code == 200
    return response


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def operator_events(workspace):
    return list(WorkspaceEvent.objects.filter(workspace=workspace, actor_kind=ActorKind.OPERATOR))


# Which states each action may start from (docs/api.md, "The workspace lifecycle"; retry also
# re-queues a stuck provisioning).
ALLOWED = {
    "retry_provisioning": {S.ERROR, S.CREATING, S.STARTING},
    "start": {S.STOPPED, S.ERROR},
    "stop": {S.RUNNING, S.STOP_FAILED},
    "destroy": set(S),
    "force_error": set(S) - {S.ERROR},
}
AFTER = {
    "retry_provisioning": lambda before: S.STARTING if before == S.ERROR else before,
    "start": lambda before: S.STARTING,
    "stop": lambda before: S.STOPPING,
    "destroy": lambda before: before,
    "force_error": lambda before: S.ERROR,
}
CASES = [(action, status) for action in ALLOWED for status in S]


@pytest.mark.parametrize(("action", "status"), CASES, ids=[f"{a}-{s}" for a, s in CASES])
def test_every_action_in_every_state_acts_or_refuses_clearly(operator, staff, action, status):
    workspace = make_workspace(status=status, machine_id="m-123" if status != S.CREATING else None)
    extra = {"apply": "yes", "reason": "Customer's machine is wedged"} if action == "force_error" else {}

    response = run_action(operator, action, workspace, **extra)

    said = " ".join(messages_of(response))
    workspace.refresh_from_db()
    if status in ALLOWED[action]:
        assert workspace.status == AFTER[action](status), said
        events = operator_events(workspace)
        assert events, "the action is on the timeline"
        assert all(event.actor_user == staff for event in events)
        assert LogEntry.objects.filter(object_id=str(workspace.pk), user=staff).exists()
        assert str(workspace.id) in said
        if action == "destroy":
            assert workspace.deleted_at is not None
        if action == "force_error":
            assert workspace.error_message == "Forced to error by an operator: Customer's machine is wedged"
    else:
        assert workspace.status == status
        assert not operator_events(workspace)
        assert not LogEntry.objects.filter(object_id=str(workspace.pk)).exists()
        # names the workspace, its state, and what the action needs
        assert str(workspace.id) in said and f"'{status}'" in said and "needs" in said, said


def test_retrying_a_stuck_creating_workspace_queues_provisioning_again(operator, staff, tasks_not_sent):
    workspace = make_workspace(status=S.CREATING, status_changed_at=timezone.now() - timedelta(hours=1))
    run_action(operator, "retry_provisioning", workspace)
    # the reconciler's own service (services.workspace_requeue), the operator as the actor
    assert tasks_not_sent == [("provision_workspace", (str(workspace.id),), None)]
    [event] = operator_events(workspace)
    assert "queued the provision again" in event.message and event.actor_user == staff


def test_queuing_again_while_the_broker_is_down_is_refused_and_records_nothing(operator, monkeypatch):
    """The timeline never says "queued again" for a message the broker refused; the operator is told."""
    from kombu.exceptions import OperationalError

    from config.celery import app

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to broker.internal.example:6379. Connection refused.")

    monkeypatch.setattr(app, "send_task", broker_down)
    stuck = make_workspace(status=S.CREATING, status_changed_at=timezone.now() - timedelta(hours=1))
    pending = make_workspace(deleted_at=timezone.now())
    for action, workspace in [("retry_provisioning", stuck), ("destroy", pending)]:
        said = " ".join(messages_of(run_action(operator, action, workspace)))
        assert str(workspace.id) in said and "task queue cannot take" in said, said
        assert "broker.internal.example" not in said  # the broker's address stays in the logs
        assert not operator_events(workspace)


def test_retrying_an_error_workspace_is_a_start_by_the_operator(operator, staff):
    workspace = make_workspace(status=S.ERROR, error_message="boom")
    run_action(operator, "retry_provisioning", workspace)
    [event] = operator_events(workspace)
    assert (event.from_status, event.to_status, event.actor_user) == (S.ERROR, S.STARTING, staff)


def test_destroying_a_deleted_workspace_queues_its_destroy_again_and_a_destroyed_one_is_refused(
    operator, tasks_not_sent
):
    pending = make_workspace(deleted_at=timezone.now())
    run_action(operator, "destroy", pending)
    assert "queued the destroy again" in operator_events(pending)[0].message
    assert tasks_not_sent == [("destroy_workspace", (str(pending.id),), None)]

    gone = make_workspace(deleted_at=timezone.now(), destroyed_at=timezone.now())
    said = " ".join(messages_of(run_action(operator, "destroy", gone)))
    assert str(gone.id) in said and "already destroyed" in said
    assert not operator_events(gone)


def test_actions_on_a_deleted_workspace_are_refused(operator):
    workspace = make_workspace(status=S.STOPPED, deleted_at=timezone.now())
    said = " ".join(messages_of(run_action(operator, "start", workspace)))
    assert str(workspace.id) in said and "'deleted'" in said
    workspace.refresh_from_db()
    assert workspace.status == S.STOPPED


def test_force_to_error_asks_for_a_reason_first(operator):
    workspace = make_workspace(status=S.RUNNING, provisioned_at=timezone.now())

    page = run_action(operator, "force_error", workspace).content.decode()
    assert 'name="reason"' in page and str(workspace.id) in page
    page = run_action(operator, "force_error", workspace, apply="yes", reason="  ").content.decode()
    assert "This field is required" in page
    workspace.refresh_from_db()
    assert workspace.status == S.RUNNING and not operator_events(workspace)

    run_action(operator, "force_error", workspace, apply="yes", reason="provider incident 42")
    workspace.refresh_from_db()
    assert workspace.status == S.ERROR
    assert workspace.error_message == "Forced to error by an operator: provider incident 42"


def test_an_action_from_the_workspace_page_returns_to_it(operator):
    workspace = make_workspace(status=S.STOPPED)
    page = operator.get(f"{CHANGELIST}{workspace.pk}/change/").content.decode()
    assert 'id="workspace-actions"' in page and 'value="retry_provisioning"' in page
    response = run_action(operator, "start", workspace, _workspace_page="1")
    assert response.redirect_chain[-1][0] == f"{CHANGELIST}{workspace.pk}/change/"
    workspace.refresh_from_db()
    assert workspace.status == S.STARTING


def test_workspaces_cannot_be_hard_deleted_from_the_admin(operator):
    workspace = make_workspace()
    assert operator.get(f"{CHANGELIST}{workspace.pk}/delete/").status_code == 403
    page = operator.get(CHANGELIST).content.decode()
    assert "delete_selected" not in page


# --- the list and the page -------------------------------------------------------------------------------


def test_counts_per_status_and_the_stuck_filter(operator, settings):
    settings.WORKSPACE_STATE_CEILINGS_SECONDS = {"creating": 900, "starting": 600, "stopping": 300}
    old = timezone.now() - timedelta(hours=1)
    stuck = make_workspace(status=S.CREATING, status_changed_at=old)
    fresh = make_workspace(status=S.CREATING)
    running_long = make_workspace(status=S.RUNNING, status_changed_at=old)  # no ceiling: never stuck
    make_workspace(status=S.ERROR)
    make_workspace(status=S.ERROR, deleted_at=timezone.now())  # not live: not counted

    page = operator.get(CHANGELIST).content.decode()
    assert 'data-status="creating"' in page
    assert "creating: 2</a>" in page and "error: 1</a>" in page and "running: 1</a>" in page
    assert "stuck (past ceiling): 1</a>" in page
    assert "Orphans and drift" in page

    page = operator.get(CHANGELIST, {"stuck": "yes"}).content.decode()
    assert str(stuck.id) in page
    assert str(fresh.id) not in page.split('id="result_list"')[1]
    assert str(running_long.id) not in page.split('id="result_list"')[1]


def test_the_counts_are_one_query(operator):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for status in S:
        make_workspace(status=status)
    with CaptureQueriesContext(connection) as queries:
        operator.get(CHANGELIST)
    counting = [q["sql"] for q in queries.captured_queries if '"stuck"' in q["sql"]]
    assert len(counting) == 1 and all(f'"{status}"' in counting[0] for status in S)


def test_the_workspace_page_links_owner_and_project_and_shows_attempts(operator, staff):
    workspace = make_workspace(status=S.ERROR, error_message="Fly said no")
    WorkspaceEvent.objects.create(
        workspace=workspace,
        kind=WorkspaceEvent.Kind.ATTEMPT,
        operation="provision",
        task_id="task-abc-123",
        request_id="01HREQUESTID",
        duration_ms=4321,
        error="422: no capacity in region",
        message="Provision attempt 1 failed.",
    )
    WorkspaceEvent.objects.create(
        workspace=workspace, kind=WorkspaceEvent.Kind.INFO, actor_kind=ActorKind.OPERATOR, actor_user=staff
    )
    page = operator.get(f"{CHANGELIST}{workspace.pk}/change/").content.decode()
    assert f"/admin/projects/project/{workspace.project_id}/change/" in page
    assert f"/admin/accounts/user/{workspace.created_by_id}/change/" in page
    for text in [
        "task-abc-123",
        "01HREQUESTID",
        "4321",
        "422: no capacity in region",
        "operator",
        staff.email,
    ]:
        assert text in page, text
    for field in ["machine_id", "volume_id", "private_ip", "driver", "project", "created_by", "cpus"]:
        assert f'name="{field}"' not in page, field


# --- orphans and drift ---------------------------------------------------------------------------------------


def test_the_orphans_page_lists_an_orphan_machine_and_destroys_it(operator, local_machines):
    unknown = str(uuid.uuid4())
    machine = local_machines.create(MachineSpec(workspace_id=unknown, hardware=Hardware("shared", 1, 256, 1)))
    live = make_workspace(status=S.CREATING)
    local_machines.create(MachineSpec(workspace_id=str(live.id), hardware=Hardware("shared", 1, 256, 1)))

    page = operator.get(ORPHANS).content.decode()
    orphans = page.split('id="orphans"')[1].split("</table>")[0]
    assert unknown in orphans and machine.machine_id in orphans and "no such workspace" in orphans
    assert str(live.id) not in orphans  # being provisioned: not an orphan

    # a live workspace's machine cannot be destroyed from here
    response = operator.post(ORPHANS, {"action": "destroy", "workspace_id": str(live.id)}, follow=True)
    assert "no orphan" in " ".join(messages_of(response))
    assert local_machines.find(str(live.id)) is not None

    response = operator.post(ORPHANS, {"action": "destroy", "workspace_id": unknown}, follow=True)
    assert "Destroyed" in " ".join(messages_of(response))
    assert local_machines.find(unknown) is None


def test_destroying_an_orphan_of_a_known_workspace_is_on_its_timeline(operator, staff, local_machines):
    deleted = make_workspace(status=S.RUNNING, deleted_at=timezone.now(), destroyed_at=timezone.now())
    local_machines.create(MachineSpec(workspace_id=str(deleted.id), hardware=Hardware("shared", 1, 256, 1)))
    operator.post(ORPHANS, {"action": "destroy", "workspace_id": str(deleted.id)})
    assert local_machines.find(str(deleted.id)) is None
    [event] = operator_events(deleted)
    assert "destroyed orphan machine" in event.message and event.actor_user == staff


def test_a_drifted_workspace_is_listed_and_marked_error_then_start_recovers_it(
    operator, staff, local_machines
):
    drifted = make_workspace(status=S.RUNNING, machine_id="m-gone", provisioned_at=timezone.now())
    page = operator.get(ORPHANS).content.decode()
    drift = page.split('id="drift"')[1].split("</table>")[0]
    assert str(drifted.id) in drift and "m-gone vanished" in drift

    operator.post(ORPHANS, {"action": "mark_error", "workspace_id": str(drifted.id)})
    drifted.refresh_from_db()
    assert drifted.status == S.ERROR and "vanished" in drifted.error_message
    [event] = operator_events(drifted)
    assert event.actor_user == staff and event.to_status == S.ERROR

    # marking it again is refused: it is no longer drifting
    response = operator.post(ORPHANS, {"action": "mark_error", "workspace_id": str(drifted.id)}, follow=True)
    assert "not drifting" in " ".join(messages_of(response))

    run_action(operator, "start", drifted)
    drifted.refresh_from_db()
    assert drifted.status == S.STARTING


def test_the_console_is_for_staff_only_and_csrf_protected(client, staff, local_machines):
    someone = UserFactory()
    workspace = make_workspace(status=S.STOPPED)
    for who in [None, someone]:
        if who:
            client.force_login(who)
        assert client.get(ORPHANS).status_code == 302
        response = client.post(CHANGELIST, {"action": "start", "_selected_action": [str(workspace.pk)]})
        assert response.status_code == 302 and "/login/" in response["Location"]
        response = client.post(ORPHANS, {"action": "mark_error", "workspace_id": str(workspace.pk)})
        assert response.status_code == 302 and "/login/" in response["Location"]
    workspace.refresh_from_db()
    assert workspace.status == S.STOPPED

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff)
    assert strict.post(ORPHANS, {"action": "destroy", "workspace_id": str(uuid.uuid4())}).status_code == 403
    assert (
        strict.post(CHANGELIST, {"action": "start", "_selected_action": [str(workspace.pk)]}).status_code
        == 403
    )


def test_a_tokens_secret_and_digest_are_never_shown(operator, staff):
    from accounts.models import ApiToken
    from tests.factories import make_token

    secret = make_token(staff)
    token = ApiToken.objects.get(user=staff)
    for url in [
        "/admin/accounts/apitoken/",
        f"/admin/accounts/apitoken/{token.pk}/change/",
        f"/admin/accounts/user/{staff.pk}/change/",
    ]:
        page = operator.get(url).content.decode()
        assert token.prefix in page
        assert secret not in page and token.digest not in page


def test_workspace_force_error_service_needs_a_reason_and_a_live_non_error_state(staff):
    from config.api.errors import ApiError
    from workspaces.services import Actor, workspace_force_error

    actor = Actor(ActorKind.OPERATOR, user=staff)
    workspace = make_workspace(status=S.STOPPED)
    with pytest.raises(ApiError, match="reason"):
        workspace_force_error(workspace=workspace, actor=actor, reason=" ")
    workspace_force_error(workspace=workspace, actor=actor, reason="why not")
    assert Workspace.objects.get(pk=workspace.pk).status == S.ERROR
    with pytest.raises(ApiError, match="'error'"):
        workspace_force_error(workspace=workspace, actor=actor, reason="again")


def test_revoking_a_token_is_in_djangos_history(operator, staff):
    from accounts.models import ApiToken
    from tests.factories import make_token

    make_token(staff)
    token = ApiToken.objects.get(user=staff)
    operator.post("/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [str(token.pk)]})
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert LogEntry.objects.get(object_id=str(token.pk)).change_message == "Revoked."
