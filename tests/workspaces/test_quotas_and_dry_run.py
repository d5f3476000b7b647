"""Quotas (403 quota_exceeded), the race on the last slot, and ?dry_run=true."""

import threading
import time

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from accounts.models import UserQuota
from projects.models import Project
from tests.conftest import Api
from tests.factories import ProjectFactory, make_token
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db
SMALL = {"max_workspaces": 2, "max_vcpus": 4, "max_memory_mb": 4096, "max_volume_gb": 30}


def create(api, project, **hardware):
    return api.post(f"/projects/{project.id}/workspaces", {"hardware": hardware} if hardware else None)


@override_settings(WORKSPACE_QUOTA_DEFAULTS=SMALL)
def test_the_workspace_count_limit(api, project):
    assert create(api, project, cpus=1, memory_mb=256, volume_size_gb=1).status_code == 201
    assert create(api, project, cpus=1, memory_mb=256, volume_size_gb=1).status_code == 201
    response = create(api, project, cpus=1, memory_mb=256, volume_size_gb=1)
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "quota_exceeded"
    (detail,) = body["details"]
    assert detail["quota"] == {"limit": "max_workspaces", "current": 2, "requested": 1, "maximum": 2}
    assert Workspace.objects.count() == 2


@pytest.mark.parametrize(
    ("hardware", "limit", "field", "current", "requested", "maximum"),
    [
        ({"cpus": 4, "memory_mb": 1024}, "max_vcpus", "hardware.cpus", 2, 4, 4),
        ({"cpus": 2, "memory_mb": 4096}, "max_memory_mb", "hardware.memory_mb", 512, 4096, 4096),
        (
            {"cpus": 1, "memory_mb": 256, "volume_size_gb": 30},
            "max_volume_gb",
            "hardware.volume_size_gb",
            1,
            30,
            30,
        ),
    ],
)
@override_settings(WORKSPACE_QUOTA_DEFAULTS=SMALL)
def test_resource_limits_at_the_boundary(api, project, hardware, limit, field, current, requested, maximum):
    assert create(api, project, cpus=2, memory_mb=512, volume_size_gb=1).status_code == 201
    response = create(api, project, **hardware)
    assert response.status_code == 403
    (detail,) = response.json()["details"]
    assert detail["field"] == field
    assert detail["quota"] == {"limit": limit, "current": current, "requested": requested, "maximum": maximum}
    # exactly up to the limit is fine
    fitting = dict(hardware)
    key = field.split(".")[1]
    fitting[key] = hardware[key] - current if key != "cpus" else 2
    if key == "memory_mb":
        fitting["memory_mb"] = 3584
    assert create(api, project, **fitting).status_code == 201


@override_settings(WORKSPACE_QUOTA_DEFAULTS=SMALL)
def test_deleting_frees_quota_and_stopped_ones_still_count(api, project):
    first = create(api, project, cpus=1, memory_mb=256, volume_size_gb=1).json()
    second = create(api, project, cpus=1, memory_mb=256, volume_size_gb=1).json()
    Workspace.objects.filter(pk=second["id"]).update(status="stopped")
    assert create(api, project, cpus=1, memory_mb=256, volume_size_gb=1).status_code == 403
    api.client.delete(f"/workspaces/{first['id']}", HTTP_AUTHORIZATION=f"Bearer {api.token}")
    assert create(api, project, cpus=1, memory_mb=256, volume_size_gb=1).status_code == 201


@override_settings(WORKSPACE_QUOTA_DEFAULTS=SMALL)
def test_an_operator_override_wins_over_the_default(api, project, user):
    UserQuota.objects.create(user=user, max_workspaces=5)
    for _ in range(3):
        assert create(api, project, cpus=1, memory_mb=256, volume_size_gb=1).status_code == 201


@override_settings(WORKSPACE_QUOTA_DEFAULTS=SMALL)
def test_quota_is_per_creator_not_per_project(api, api_for, project, user):
    from projects.models import Role
    from tests.factories import MembershipFactory

    member = MembershipFactory(project=project, role=Role.MEMBER).user
    for _ in range(2):
        assert create(api, project, cpus=1, memory_mb=256, volume_size_gb=1).status_code == 201
    assert create(api_for(member), project, cpus=1, memory_mb=256, volume_size_gb=1).status_code == 201


@pytest.mark.django_db(transaction=True)
@override_settings(WORKSPACE_QUOTA_DEFAULTS={**SMALL, "max_workspaces": 1})
def test_two_concurrent_creates_cannot_both_take_the_last_slot(user, tasks_not_sent):
    project = ProjectFactory(owner=user)
    token = make_token(user)
    barrier = threading.Barrier(4)
    results = []

    def attempt():
        try:
            barrier.wait()
            response = Api(token).post(
                f"/projects/{project.id}/workspaces", {"hardware": {"cpus": 1, "memory_mb": 256}}
            )
            results.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [201, 403, 403, 403]
    assert Workspace.objects.count() == 1
    assert [name for name, _, _ in tasks_not_sent] == ["provision_workspace"]


# --- dry run: POST /projects/{id}/workspaces/plan, and ?dry_run=true on the create (kept for compatibility)

PLAN_WAYS = ["/workspaces/plan", "/workspaces?dry_run=true"]


def plan(api, project, way, body=None):
    return api.post(f"/projects/{project.id}{way}", body)


@pytest.mark.parametrize("way", PLAN_WAYS)
def test_dry_run_validates_everything_and_creates_nothing(
    api, project, way, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = plan(api, project, way, {"hardware": {"cpus": 4, "memory_mb": 4096}})
    assert response.status_code == 200
    assert response.json() == {
        "hardware": {
            "cpu_kind": "shared",
            "cpus": 4,
            "memory_mb": 4096,
            "volume_size_gb": 10,
            "gpu_kind": None,
        },
        "keep_active": False,
    }
    assert "Location" not in response
    assert not Workspace.objects.exists()
    assert callbacks == []


@pytest.mark.parametrize("way", PLAN_WAYS)
def test_dry_run_reports_the_same_errors(api, project, api_for, way):
    from projects.models import Role
    from tests.factories import MembershipFactory, UserFactory

    bad = plan(api, project, way, {"hardware": {"cpus": 3}})
    assert bad.status_code == 400
    assert bad.json()["details"][0]["field"] == "hardware.cpus"
    assert plan(api, project, way, {"hardwere": {}}).json()["details"][0]["code"] == "unknown_field"
    assert plan(api_for(UserFactory()), project, way).status_code == 404
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user
    assert plan(api_for(viewer), project, way).status_code == 403
    assert not Workspace.objects.exists()


@pytest.mark.parametrize("way", PLAN_WAYS)
@override_settings(WORKSPACE_QUOTA_DEFAULTS={**SMALL, "max_workspaces": 0})
def test_dry_run_checks_the_quota(api, project, way):
    response = plan(api, project, way)
    assert response.status_code == 403
    assert response.json()["code"] == "quota_exceeded"


@pytest.mark.parametrize("value", ["1", "yes", "True", ""])
def test_dry_run_is_strict(api, project, value):
    response = api.post(f"/projects/{project.id}/workspaces?dry_run={value}")
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "dry_run"
    assert not Workspace.objects.exists()


def test_dry_run_false_creates(api, project):
    assert api.post(f"/projects/{project.id}/workspaces?dry_run=false").status_code == 201


def test_the_plan_is_a_post_with_a_json_body(api, project):
    assert api.get(f"/projects/{project.id}/workspaces/plan").status_code == 405
    response = api.post(f"/projects/{project.id}/workspaces/plan", raw="cpus=2", content_type="text/plain")
    assert response.status_code == 415


@override_settings(API_RATE_LIMITS={"user": "100/minute", "workspace_create": "1/minute"})
def test_a_plan_starts_nothing_so_only_the_general_limit_counts_it(api, project):
    from django.core.cache import cache

    cache.clear()
    try:
        for _ in range(3):
            assert plan(api, project, "/workspaces/plan").status_code == 200
        assert api.post(f"/projects/{project.id}/workspaces").status_code == 201
        assert api.post(f"/projects/{project.id}/workspaces").status_code == 429
    finally:
        cache.clear()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: SQLite serializes writers instead")
def test_a_create_that_meets_a_project_delete_waits_for_it_and_is_then_a_404(user, tasks_not_sent):
    project = ProjectFactory(owner=user)
    token = make_token(user)
    results = []

    def attempt():
        try:
            results.append(Api(token).post(f"/projects/{project.id}/workspaces", {}).status_code)
        finally:
            connection.close()

    thread = threading.Thread(target=attempt)
    # The delete's transaction holds the project's row lock (as project_delete does) while the
    # create arrives; the create must wait for it, then find the project gone.
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        thread.start()
        deadline = time.monotonic() + 10
        with connection.cursor() as cursor:
            while True:
                cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                if cursor.fetchone()[0] or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        assert not results, "the create did not wait for the project's lock"
        Project.objects.filter(pk=project.pk).update(deleted_at=timezone.now())
    thread.join()
    assert results == [404]
    assert not Workspace.objects.exists()
    assert tasks_not_sent == []
