"""POST /projects/{id}/workspaces: every status code of the seed and the spec."""

import re
import uuid

import pytest
from django.db.models.signals import post_save
from django.db.transaction import TransactionManagementError

from accounts.services import user_settings_get
from projects.models import Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from workspaces import services
from workspaces.models import Workspace, WorkspaceEvent

pytestmark = pytest.mark.django_db

DEFAULT_HARDWARE = {
    "cpu_kind": "shared",
    "cpus": 2,
    "memory_mb": 2048,
    "volume_size_gb": 10,
    "gpu_kind": None,
}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def url(project_or_id):
    return f"/projects/{getattr(project_or_id, 'id', project_or_id)}/workspaces"


# --- 201 -------------------------------------------------------------------------------------------


def test_empty_body_creates_a_workspace_with_the_documented_defaults(api, project):
    response = api.post(url(project))
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {
        "id",
        "project_id",
        "status",
        "hardware",
        "keep_active",
        "machine_id",
        "private_ip",
        "git_ref",
        "preview_token",
        "error_message",
        "created_at",
        "updated_at",
    }
    assert body["status"] == "creating"
    assert body["project_id"] == str(project.id)
    assert body["hardware"] == DEFAULT_HARDWARE
    assert body["keep_active"] is False
    assert body["machine_id"] is None and body["private_ip"] is None and body["git_ref"] is None
    assert body["error_message"] is None
    assert ISO_UTC.match(body["created_at"]) and ISO_UTC.match(body["updated_at"])
    assert response["Location"] == f"/workspaces/{body['id']}"
    assert api.get(response["Location"]).json() == body


def test_the_seed_request_example(api, project):
    response = api.post(url(project), {"hardware": DEFAULT_HARDWARE, "keep_active": False})
    assert response.status_code == 201
    assert response.json()["hardware"] == DEFAULT_HARDWARE


def test_null_hardware_means_the_callers_defaults(api, project, user):
    settings = user_settings_get(user=user)
    settings.cpus, settings.memory_mb, settings.volume_size_gb = 4, 4096, 50
    settings.save()
    response = api.post(url(project), {"hardware": None, "keep_active": True})
    assert response.status_code == 201
    assert response.json()["hardware"] == {
        **DEFAULT_HARDWARE,
        "cpus": 4,
        "memory_mb": 4096,
        "volume_size_gb": 50,
    }
    assert response.json()["keep_active"] is True


def test_partial_hardware_takes_the_rest_from_the_callers_defaults(api, project, user):
    settings = user_settings_get(user=user)
    settings.volume_size_gb = 42
    settings.save()
    response = api.post(url(project), {"hardware": {"cpus": 4, "memory_mb": 1024}})
    assert response.status_code == 201
    assert response.json()["hardware"] == {
        **DEFAULT_HARDWARE,
        "cpus": 4,
        "memory_mb": 1024,
        "volume_size_gb": 42,
    }


def test_the_merged_hardware_is_validated_as_a_whole(api, project, user):
    """1 CPU is fine, but with the default 2048 MB... still fine; 1 CPU with a 4096 MB default is not."""
    settings = user_settings_get(user=user)
    settings.memory_mb = 4096
    settings.save()
    response = api.post(url(project), {"hardware": {"cpus": 1}})
    assert response.status_code == 400
    assert response.json()["details"][0]["code"] == "memory_too_high"


def test_the_hardware_is_stored_as_columns_and_the_creation_is_on_the_timeline(api, project, user):
    body = api.post(
        url(project), {"hardware": {"cpu_kind": "performance", "cpus": 2, "memory_mb": 4096}}
    ).json()
    workspace = Workspace.objects.get(pk=body["id"])
    assert (workspace.cpu_kind, workspace.cpus, workspace.memory_mb) == ("performance", 2, 4096)
    assert workspace.created_by == user
    assert workspace.driver == "local"
    event = WorkspaceEvent.objects.get(workspace=workspace)
    assert (event.to_status, event.actor_kind, event.actor_user) == ("creating", "token", user)


def test_preview_tokens_are_unguessable_and_distinct(api, project):
    tokens = {api.post(url(project)).json()["preview_token"] for _ in range(5)}
    assert len(tokens) == 5
    for token in tokens:
        assert token.startswith("ptk_") and len(token) >= 40


def test_a_member_may_create(api_for, project):
    member = MembershipFactory(project=project, role=Role.MEMBER).user
    assert api_for(member).post(url(project)).status_code == 201


def test_trailing_slash_works_too(api, project):
    assert api.post(url(project) + "/").status_code == 201


# --- 400 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"hardware": {"cpus": "2"}}, "hardware.cpus", "invalid_type"),
        ({"hardware": {"cpus": True}}, "hardware.cpus", "invalid_type"),
        ({"hardware": {"cpus": 2.5}}, "hardware.cpus", "invalid_type"),
        ({"hardware": {"cpus": 2.0}}, "hardware.cpus", "invalid_type"),
        ({"hardware": {"cpus": None}}, "hardware.cpus", "invalid_type"),
        ({"hardware": {"memory_mb": "2048"}}, "hardware.memory_mb", "invalid_type"),
        ({"hardware": {"volume_size_gb": [10]}}, "hardware.volume_size_gb", "invalid_type"),
        ({"hardware": {"cpu_kind": 1}}, "hardware.cpu_kind", "invalid_type"),
        ({"hardware": {"gpu_kind": False}}, "hardware.gpu_kind", "invalid_type"),
        ({"keep_active": "false"}, "keep_active", "invalid_type"),
        ({"keep_active": 0}, "keep_active", "invalid_type"),
        ({"keep_active": None}, "keep_active", "invalid_type"),
        ({"hardware": "big"}, "hardware", "invalid_type"),
        ({"hardware": [1, 2]}, "hardware", "invalid_type"),
        ({"hardware": {"cpu": 2}}, "hardware.cpu", "unknown_field"),
        ({"hardwear": {}}, "hardwear", "unknown_field"),
        ({"name": "x"}, "name", "unknown_field"),
    ],
)
def test_strict_types_and_unknown_fields(api, project, body, field, code):
    response = api.post(url(project), body)
    assert response.status_code == 400, response.content
    error = response.json()
    assert error["code"] == "validation_error"
    assert {"field": field, "code": code} == {k: error["details"][0][k] for k in ("field", "code")}
    assert error["error"].startswith(field)
    assert not Workspace.objects.exists()


@pytest.mark.parametrize("raw", ["[]", '"x"', "3", "null"])
def test_a_body_that_is_not_an_object_is_a_400(api, project, raw):
    response = api.post(url(project), raw=raw)
    assert response.status_code == 400
    assert response.json()["details"][0]["code"] == "invalid_type"


def test_malformed_json_is_a_400(api, project):
    response = api.post(url(project), raw='{"hardware": ')
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"


# --- 401 / 403 / 404 / 415 -----------------------------------------------------------------------


def test_no_token_is_a_401(anonymous, project):
    response = anonymous.post(url(project))
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_viewer_may_not_create(api_for, project):
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user
    response = api_for(viewer).post(url(project))
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert "viewer" in response.json()["error"]
    assert not Workspace.objects.exists()


def test_a_viewer_is_refused_before_the_body_is_read(api_for, project):
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user
    assert api_for(viewer).post(url(project), {"bogus": 1}).status_code == 403


def test_another_users_project_is_a_404_that_looks_like_a_missing_one(api, db):
    someone_elses = ProjectFactory(owner=UserFactory())
    theirs = api.post(url(someone_elses), {"hardware": {"cpus": "bad"}})
    missing = api.post(url(uuid.uuid4()), {"hardware": {"cpus": "bad"}})
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json() == {"error": "Project not found.", "code": "not_found"}
    assert not Workspace.objects.exists()


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "b2c3d4e5-6789-01ab-cdef-234567890abz"])
def test_a_project_id_that_is_not_a_uuid_is_a_404(api, bad_id):
    response = api.post(url(bad_id))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"]
)
def test_a_body_that_is_not_json_is_a_415(api, project, content_type):
    response = api.post(url(project), raw="keep_active=true", content_type=content_type)
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert "application/json" in response.json()["error"]


def test_get_is_not_allowed_here_yet_and_says_so_in_our_shape(api, project):
    response = api.client.put(url(project), {}, format="json", HTTP_AUTHORIZATION=f"Bearer {api.token}")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


# --- provisioning is queued after commit; the cost is bounded ------------------------------------


def test_provisioning_is_enqueued_only_after_commit(
    api, project, django_capture_on_commit_callbacks, tasks_not_sent
):
    sent = tasks_not_sent
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post(url(project))
    assert response.status_code == 201
    assert sent == []  # nothing sent while the transaction could still roll back
    assert len(callbacks) == 1
    callbacks[0]()
    assert sent == [("provision_workspace", (response.json()["id"],), None)]


def test_a_rejected_create_enqueues_nothing(api, project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        api.post(url(project), {"hardware": {"cpus": 3}})
    assert callbacks == []


def test_the_create_endpoint_makes_a_bounded_number_of_queries(api, project, django_assert_max_num_queries):
    api.post(url(project))  # warm: the token's last_used_at is written at most once a minute
    # token, project, user lock, project lock, quota use, workspace, event, and the transaction's
    # bookkeeping: fixed, whatever the number of workspaces (issue 7 measures and trims it).
    with django_assert_max_num_queries(9):
        assert api.post(url(project)).status_code == 201


# --- GET /workspaces/{id} -------------------------------------------------------------------------


def test_get_a_workspace_of_another_user_is_a_404(api, api_for, project):
    created = api.post(url(project)).json()
    stranger = api_for(UserFactory())
    assert stranger.get(f"/workspaces/{created['id']}").status_code == 404
    assert stranger.get("/workspaces/nope").json() == {"error": "Workspace not found.", "code": "not_found"}


def test_a_viewer_may_watch_a_workspace(api, api_for, project):
    created = api.post(url(project)).json()
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user
    assert api_for(viewer).get(f"/workspaces/{created['id']}").json()["id"] == created["id"]


# --- the create is made of ordinary model saves ----------------------------------------------------


def test_a_create_sends_the_model_signals_of_the_workspace_and_its_event(api, project):
    saved = []

    def receiver(sender, instance, created, **kwargs):
        saved.append((sender, created))

    post_save.connect(receiver, sender=Workspace)
    post_save.connect(receiver, sender=WorkspaceEvent)
    try:
        assert api.post(url(project)).status_code == 201
    finally:
        post_save.disconnect(receiver, sender=Workspace)
        post_save.disconnect(receiver, sender=WorkspaceEvent)
    assert saved == [(Workspace, True), (WorkspaceEvent, True)]


@pytest.mark.django_db(transaction=True)
def test_the_create_service_refuses_to_run_outside_a_transaction(user, project):
    # Its locks would be released statement by statement: the quota race would be open again.
    with pytest.raises(TransactionManagementError):
        services.workspace_create_lock(user=user, project_id=str(project.id))
