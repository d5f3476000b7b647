"""GET /metrics: Prometheus text, behind a token, with request and domain metrics after real work."""

import time
from datetime import timedelta

import pytest
from django.urls import resolve
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_for
from tests.factories import WorkspaceFactory
from workspaces import reconciler
from workspaces.models import WorkspaceEvent

pytestmark = pytest.mark.django_db

TOKEN = "metrics-" + "t" * 32
SMALL = {"hardware": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256, "volume_size_gb": 1}}


class Scrape:
    def __init__(self, text: str):
        self.samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    def names(self) -> set[str]:
        return {s.name for s in self.samples}

    def value(self, name: str, **labels) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``."""
        return sum(s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items())


@pytest.fixture
def scrape(settings, anonymous):
    settings.METRICS_TOKEN = TOKEN

    def scrape() -> Scrape:
        response = anonymous.get("/metrics", headers={"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"})
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain; version=0.0.4")
        return Scrape(response.content.decode())

    return scrape


def test_off_unless_a_token_is_set_and_then_only_with_it(anonymous, settings):
    response = anonymous.get("/metrics", headers={"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"})
    assert response.status_code == 404 and response.json()["code"] == "not_found"

    settings.METRICS_TOKEN = TOKEN
    for header in [{}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": f"Basic {TOKEN}"}]:
        response = anonymous.get("/metrics", headers=header)
        assert response.status_code == 401
        assert response.json()["code"] == "not_authenticated"
        assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.worker
def test_request_and_domain_metrics_after_a_real_provisioning_and_stop(worker, fly, api, project, scrape):
    before = scrape()
    response = api.post(f"/projects/{project.id}/workspaces", SMALL)
    assert response.status_code == 201, response.content
    workspace_id = response.json()["id"]
    assert wait_for(api, workspace_id, {"running", "error"})["status"] == "running"
    assert api.post(f"/workspaces/{workspace_id}/stop").status_code == 200
    assert wait_for(api, workspace_id, {"stopped", "stop_failed"})["status"] == "stopped"
    assert api.get("/no/such/endpoint").status_code == 404

    after = scrape()
    route = resolve(f"/projects/{project.id}/workspaces").route  # the URL pattern, e.g. projects/<str:id>/...
    created = {"method": "POST", "route": route, "status": "201"}
    assert after.value("http_request_duration_seconds_count", **created) == (
        before.value("http_request_duration_seconds_count", **created) + 1
    )
    assert after.value("http_request_duration_seconds_bucket", le="+Inf", **created) >= 1
    assert after.value("http_request_duration_seconds_sum", **created) > 0
    polls = {"method": "GET", "route": resolve(f"/workspaces/{workspace_id}").route, "status": "200"}
    assert after.value("http_request_duration_seconds_count", **polls) >= 2
    assert after.value("http_request_duration_seconds_count", route="<unmatched>", status="404") >= 1

    assert after.value("workspaces", status="stopped") == 1
    assert after.value("workspaces", status="running") == 0
    assert {s.labels["status"] for s in after.samples if s.name == "workspaces"} == {
        "creating",
        "starting",
        "running",
        "stopping",
        "stopped",
        "error",
        "stop_failed",
    }
    for operation in ["provision", "stop"]:
        done = {"operation": operation, "outcome": "succeeded"}
        assert after.value("workspace_attempt_duration_seconds_count", **done) == 1
        assert after.value("workspace_attempt_duration_seconds_bucket", le="+Inf", **done) == 1
        assert after.value("workspace_attempt_duration_seconds_sum", **done) > 0
        assert after.value("workspace_attempts_running", operation=operation) == 0
        assert after.value("workspace_task_retries_total", operation=operation) == 0
        assert after.value("workspace_task_failures_total", operation=operation) == 0
    assert after.value("workspaces_pending_destroy") == 0
    assert "celery_queue_length" in after.names()
    assert after.value("celery_queue_length", queue="tests") >= 0
    assert 0 <= after.value("celery_worker_heartbeat_age_seconds", queue="tests") < 60


@pytest.mark.worker
def test_retries_and_failures_are_counted_from_the_attempts(worker, fly, api, project, scrape):
    # Fly fails with 5xx for a while: the provisioning is retried, then succeeds.
    fly.set_faults(error_5xx_rate=1.0)
    retried = api.post(f"/projects/{project.id}/workspaces", SMALL).json()["id"]
    deadline = time.monotonic() + 30
    while not WorkspaceEvent.objects.filter(
        workspace_id=retried, kind="attempt", attempt_outcome="retried"
    ).exists():
        assert time.monotonic() < deadline, "no retried attempt"
        time.sleep(0.1)
    fly.reset_faults()
    assert wait_for(api, retried, {"running", "error"})["status"] == "running"

    # Fly has no capacity: the provisioning fails for good.
    fly.set_faults(capacity_rate=1.0)
    failed = api.post(f"/projects/{project.id}/workspaces", SMALL).json()["id"]
    assert wait_for(api, failed, {"running", "error"})["status"] == "error"

    metrics = scrape()
    retries = WorkspaceEvent.objects.filter(kind="attempt", attempt_outcome="retried").count()
    assert retries >= 1
    assert metrics.value("workspace_task_retries_total", operation="provision") == retries
    assert metrics.value("workspace_task_failures_total", operation="provision") == 1
    assert (
        metrics.value("workspace_attempt_duration_seconds_count", operation="provision", outcome="retried")
        == retries
    )
    assert metrics.value("workspace_attempt_duration_seconds_count", operation="provision") == retries + 2
    assert metrics.value("workspaces", status="running") == 1
    assert metrics.value("workspaces", status="error") == 1


def test_reconciler_actions_are_counted(project, scrape, settings, local_machines):
    before = scrape()
    stuck = WorkspaceFactory(
        project=project,
        status="creating",
        status_changed_at=timezone.now() - timedelta(hours=1),
        memory_mb=256,
        driver="local",
    )
    settings.WORKSPACE_STATE_CEILINGS_SECONDS = {"creating": 60}
    report = reconciler.reconcile()
    assert report.timed_out == [str(stuck.id)]

    after = scrape()
    assert after.value("reconciler_runs_total") == before.value("reconciler_runs_total") + 1
    assert after.value("reconciler_actions_total", action="timed_out") == (
        before.value("reconciler_actions_total", action="timed_out") + 1
    )
    for action in ["requeued", "orphan_destroyed", "vanished"]:
        assert after.value("reconciler_actions_total", action=action) == before.value(
            "reconciler_actions_total", action=action
        )
