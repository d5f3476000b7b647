"""Idempotency-Key replay, mismatch and concurrency; rate limits with Retry-After."""

import threading

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import override_settings

from accounts.models import IdempotencyKey
from tests.conftest import Api
from tests.factories import ProjectFactory, UserFactory, make_token
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db


def create(api, project, key, body=None):
    return api.post(f"/projects/{project.id}/workspaces", body or {}, headers={"HTTP_IDEMPOTENCY_KEY": key})


def test_the_same_key_and_body_replays_the_first_response(api, project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        first = create(api, project, "k-1", {"keep_active": True})
        again = create(api, project, "k-1", {"keep_active": True})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert Workspace.objects.count() == 1
    assert len(callbacks) == 1  # provisioning queued once


def test_the_same_key_with_another_body_is_a_422(api, project):
    create(api, project, "k-2", {"keep_active": True})
    response = create(api, project, "k-2", {"keep_active": False})
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert Workspace.objects.count() == 1


def test_the_same_key_on_another_endpoint_is_a_422(api, project, user):
    other = ProjectFactory(owner=user)
    create(api, project, "k-3")
    assert create(api, other, "k-3").status_code == 422


def test_keys_are_per_user(api, api_for, project):
    from projects.models import Role
    from tests.factories import MembershipFactory

    member = MembershipFactory(project=project, role=Role.MEMBER).user
    assert create(api, project, "shared-key").status_code == 201
    assert create(api_for(member), project, "shared-key").status_code == 201
    assert Workspace.objects.count() == 2


def test_a_client_error_is_replayed_too_and_creates_nothing(api, project):
    first = create(api, project, "k-4", {"hardware": {"cpus": 3}})
    again = create(api, project, "k-4", {"hardware": {"cpus": 3}})
    assert first.status_code == again.status_code == 400
    assert first.json() == again.json()
    assert not Workspace.objects.exists()


def test_a_request_still_in_flight_is_a_409(api, project, user):
    IdempotencyKey.objects.create(user=user, key="k-5", request_fingerprint="x")
    response = create(api, project, "k-5")
    assert response.status_code in (409, 422)
    # with the matching fingerprint it is the in-flight case
    IdempotencyKey.objects.all().delete()
    create(api, project, "k-6")
    IdempotencyKey.objects.filter(key="k-6").update(state="in_flight")
    response = create(api, project, "k-6")
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_in_flight"


def test_keys_expire_after_24_hours(api, project):
    from datetime import timedelta

    from django.utils import timezone

    create(api, project, "k-7")
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert create(api, project, "k-7").status_code == 201
    assert Workspace.objects.count() == 2


# Visible ASCII only, as the schema's pattern says (the fuzzer found spaces were taken).
@pytest.mark.parametrize("key", ["", "x" * 256, "a b", "clé"])
def test_a_bad_key_is_a_400(api, project, key):
    response = create(api, project, key)
    assert response.status_code == 400
    assert response.json()["details"][0]["code"] == "invalid_idempotency_key"


def test_start_and_stop_are_idempotent_too(api, project):
    workspace = Workspace.objects.create(
        project=project,
        created_by=project.owner,
        status="running",
        cpu_kind="shared",
        cpus=1,
        memory_mb=256,
        volume_size_gb=1,
    )
    headers = {"HTTP_IDEMPOTENCY_KEY": "stop-1"}
    first = api.post(f"/workspaces/{workspace.id}/stop", headers=headers)
    again = api.post(f"/workspaces/{workspace.id}/stop", headers=headers)
    assert first.status_code == again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert workspace.events.filter(to_status="stopping").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_create_one_workspace(tasks_not_sent):
    user = UserFactory()
    project = ProjectFactory(owner=user)
    token = make_token(user)
    barrier = threading.Barrier(4)
    statuses = []

    def attempt():
        try:
            barrier.wait()
            statuses.append(create(Api(token), project, "race-key").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Workspace.objects.count() == 1
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}
    assert [name for name, _, _ in tasks_not_sent] == ["provision_workspace"]  # queued once


# --- rate limits ------------------------------------------------------------------------------------


@pytest.fixture
def fresh_counts():
    cache.clear()
    yield
    cache.clear()


@override_settings(API_RATE_LIMITS={"user": "5/minute", "workspace_create": "100/minute"})
def test_the_general_limit_answers_429_with_retry_after(api, fresh_counts):
    for _ in range(5):
        assert api.get("/workspaces").status_code == 200
    response = api.get("/workspaces")
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60


@override_settings(API_RATE_LIMITS={"user": "100/minute", "workspace_create": "2/minute"})
def test_creates_have_a_stricter_limit(api, project, fresh_counts):
    assert api.post(f"/projects/{project.id}/workspaces").status_code == 201
    assert api.post(f"/projects/{project.id}/workspaces").status_code == 201
    response = api.post(f"/projects/{project.id}/workspaces")
    assert response.status_code == 429
    assert "Retry-After" in response
    # reading is not a create
    assert api.get(f"/projects/{project.id}/workspaces").status_code == 200
    assert Workspace.objects.count() == 2


@override_settings(API_RATE_LIMITS={"user": "3/minute", "workspace_create": "100/minute"})
def test_limits_are_per_user(api, api_for, fresh_counts):
    for _ in range(3):
        api.get("/workspaces")
    assert api.get("/workspaces").status_code == 429
    assert api_for(UserFactory()).get("/workspaces").status_code == 200


def test_project_creation_is_idempotent(api):
    from projects.models import Project

    first = api.post("/projects", {"name": "once"}, headers={"HTTP_IDEMPOTENCY_KEY": "p-1"})
    again = api.post("/projects", {"name": "once"}, headers={"HTTP_IDEMPOTENCY_KEY": "p-1"})
    assert first.status_code == again.status_code == 201  # not a 409 for the duplicate name
    assert again.json() == first.json()
    assert Project.objects.count() == 1
