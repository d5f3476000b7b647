"""ETag and If-Match on /workspaces/{id}: a client that sends back the tag it read changes or deletes a
workspace only if nobody changed it since (412 ``precondition_failed`` otherwise, and nothing
happens); a client that sends no If-Match is not affected."""

import threading

import pytest
from django.db import connection

from tests.conftest import Api
from tests.factories import WorkspaceFactory, make_token
from workspaces.models import Workspace, WorkspaceEvent, WorkspaceStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace(project):
    return WorkspaceFactory(project=project, status=WorkspaceStatus.RUNNING, keep_active=False)


def patch(api, workspace, body, if_match=None):
    headers = {} if if_match is None else {"HTTP_IF_MATCH": if_match}
    return api.client.patch(
        f"/workspaces/{workspace.id}",
        body,
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {api.token}",
        **headers,
    )


def delete(api, workspace, if_match=None):
    headers = {} if if_match is None else {"HTTP_IF_MATCH": if_match}
    return api.client.delete(
        f"/workspaces/{workspace.id}", HTTP_AUTHORIZATION=f"Bearer {api.token}", **headers
    )


def etag(api, workspace):
    response = api.get(f"/workspaces/{workspace.id}")
    assert response.status_code == 200
    return response["ETag"]


def test_a_workspace_has_a_strong_etag_that_changes_when_it_does(api, workspace):
    first = etag(api, workspace)
    assert first.startswith('"') and first.endswith('"') and len(first) > 2
    assert etag(api, workspace) == first  # reading changes nothing
    response = patch(api, workspace, {"keep_active": True})
    assert response.status_code == 200
    assert response["ETag"] != first
    assert response["ETag"] == etag(api, workspace)  # the answer's tag is the one a GET gives now


def test_a_patch_with_the_current_etag_is_applied(api, workspace):
    response = patch(api, workspace, {"keep_active": True}, if_match=etag(api, workspace))
    assert response.status_code == 200
    assert response.json()["keep_active"] is True
    assert Workspace.objects.get(pk=workspace.pk).keep_active is True


def test_a_patch_with_a_stale_etag_is_refused_and_changes_nothing(api, workspace):
    stale = etag(api, workspace)
    assert patch(api, workspace, {"keep_active": True}).status_code == 200  # someone else's change
    events = WorkspaceEvent.objects.filter(workspace=workspace).count()

    response = patch(api, workspace, {"keep_active": False}, if_match=stale)

    assert response.status_code == 412
    body = response.json()
    assert body["code"] == "precondition_failed"
    assert body["details"][0]["allowed"]["etag"] == etag(api, workspace)  # what to re-read
    assert Workspace.objects.get(pk=workspace.pk).keep_active is True
    assert WorkspaceEvent.objects.filter(workspace=workspace).count() == events


@pytest.mark.parametrize("if_match", ['"bogus"', "bogus", '""', 'W/"bogus", "other"'])
def test_any_tag_but_the_current_one_is_refused(api, workspace, if_match):
    response = patch(api, workspace, {"keep_active": True}, if_match=if_match)
    assert response.status_code == 412
    assert Workspace.objects.get(pk=workspace.pk).keep_active is False


@pytest.mark.parametrize(
    "if_match", ["*", "{tag}", "W/{tag}", '"old", {tag}', ' {tag} , "other"'], ids=lambda v: v
)
def test_a_wildcard_or_a_list_holding_the_current_tag_passes(api, workspace, if_match):
    response = patch(
        api, workspace, {"keep_active": True}, if_match=if_match.format(tag=etag(api, workspace))
    )
    assert response.status_code == 200
    assert Workspace.objects.get(pk=workspace.pk).keep_active is True


def test_a_stale_if_match_is_answered_after_the_404_and_403_of_the_lookup(api, api_for, workspace):
    from projects.models import Role
    from tests.factories import MembershipFactory, UserFactory

    assert patch(api_for(UserFactory()), workspace, {"keep_active": True}, if_match='"x"').status_code == 404
    viewer = MembershipFactory(project=workspace.project, role=Role.VIEWER).user
    assert patch(api_for(viewer), workspace, {"keep_active": True}, if_match='"x"').status_code == 403


def test_a_delete_with_a_stale_etag_is_refused_and_the_workspace_stays(
    api, workspace, django_capture_on_commit_callbacks
):
    stale = etag(api, workspace)
    patch(api, workspace, {"keep_active": True})
    with django_capture_on_commit_callbacks() as callbacks:
        response = delete(api, workspace, if_match=stale)
    assert response.status_code == 412
    assert response.json()["code"] == "precondition_failed"
    assert callbacks == []  # no destroy queued
    assert api.get(f"/workspaces/{workspace.id}").status_code == 200


def test_a_delete_with_the_current_etag_or_none_goes_ahead(api, project, workspace):
    assert delete(api, workspace, if_match=etag(api, workspace)).status_code == 204
    assert api.get(f"/workspaces/{workspace.id}").status_code == 404
    other = WorkspaceFactory(project=project)
    assert delete(api, other).status_code == 204
    assert api.get(f"/workspaces/{other.id}").status_code == 404


@pytest.mark.parametrize(("operation", "state"), [("start", "stopped"), ("stop", "running")])
def test_start_and_stop_answer_the_workspaces_new_etag(api, project, operation, state, tasks_not_sent):
    workspace = WorkspaceFactory(project=project, status=state)
    before = etag(api, workspace)
    response = api.post(f"/workspaces/{workspace.id}/{operation}")
    assert response.status_code == 200
    assert response["ETag"] != before
    assert response["ETag"] == etag(api, workspace)  # usable in If-Match at once
    assert patch(api, workspace, {"keep_active": True}, if_match=response["ETag"]).status_code == 200


def test_an_idempotent_replay_repeats_the_first_answers_etag(api, project, tasks_not_sent):
    workspace = WorkspaceFactory(project=project, status="stopped")
    headers = {"HTTP_IDEMPOTENCY_KEY": "start-1"}
    first = api.post(f"/workspaces/{workspace.id}/start", headers=headers)
    again = api.post(f"/workspaces/{workspace.id}/start", headers=headers)
    assert again["Idempotent-Replayed"] == "true"
    assert again.status_code == first.status_code == 200
    assert again["ETag"] == first["ETag"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite has none)")
@pytest.mark.django_db(transaction=True)
def test_two_writers_with_the_same_etag_cannot_both_win(user, project, tasks_not_sent):
    """Both read the same tag and PATCH at once: the check and the write happen under the row's
    lock, so exactly one is applied and the other learns it was too late."""
    workspace = WorkspaceFactory(project=project, status=WorkspaceStatus.RUNNING, keep_active=False)
    token = make_token(user)
    tag = etag(Api(token), workspace)
    barrier = threading.Barrier(6)
    results = []

    def attempt():
        try:
            barrier.wait()
            results.append(patch(Api(token), workspace, {"keep_active": True}, if_match=tag).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200, 412, 412, 412, 412, 412]
    assert WorkspaceEvent.objects.filter(workspace=workspace, message="keep_active set to true.").count() == 1
