"""GET /healthz and GET /readyz: unauthenticated JSON for load balancers and orchestrators; the
readiness details only for a caller with the metrics token."""

import json

import pytest
from django.db import connection

from config.operations import health
from tests.conftest import Api

pytestmark = pytest.mark.django_db

METRICS_TOKEN = "metrics-" + "t" * 32


@pytest.fixture
def monitor(db, settings):
    """An operator's monitoring: it calls /readyz with the metrics token, and sees the details."""
    settings.METRICS_TOKEN = METRICS_TOKEN
    return Api(METRICS_TOKEN)


def test_liveness_answers_without_touching_the_database(anonymous, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"


@pytest.mark.worker
def test_ready_when_database_migrations_broker_and_a_worker_are(worker, monitor):
    response = monitor.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "migrations", "broker", "worker"}
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["migrations"] == {"ok": True, "pending": 0}
    assert body["checks"]["broker"] == {"ok": True}
    beat = body["checks"]["worker"]
    assert beat["ok"] and beat["required"] and beat["hostname"] and beat["last_seen_seconds_ago"] >= 0


@pytest.mark.worker
def test_no_recent_worker_is_a_503_unless_the_worker_is_not_required(worker, monitor, settings):
    settings.READINESS_WORKER_MAX_AGE_SECONDS = 0  # every heartbeat is too old
    response = monitor.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["worker"]["ok"] is False
    assert "no worker has answered" in body["checks"]["worker"]["error"]
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]

    settings.READINESS_REQUIRE_WORKER = False
    response = monitor.get("/readyz")
    assert response.status_code == 200
    relaxed = response.json()["checks"]["worker"]
    assert (relaxed["ok"], relaxed["required"], relaxed["error"]) == (
        False,
        False,
        body["checks"]["worker"]["error"],
    )
    assert relaxed["hostname"] == body["checks"]["worker"]["hostname"]  # the age goes on counting


def test_an_unreachable_broker_is_a_503_naming_it(monitor, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = monitor.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["broker"]["ok"] is False and "ConnectionError" in checks["broker"]["error"]
    assert checks["worker"]["ok"] is False
    assert checks["database"]["ok"] is True


def test_an_unapplied_migration_is_a_503_until_migrate_ran(monitor, monkeypatch):
    monkeypatch.setattr(health, "_migrations_applied", False)
    with connection.cursor() as cursor:  # rolled back with the test's transaction
        cursor.execute("DELETE FROM django_migrations WHERE app = 'workspaces'")
    response = monitor.get("/readyz")
    assert response.status_code == 503
    migrations = response.json()["checks"]["migrations"]
    assert migrations["ok"] is False and migrations["pending"] >= 1
    assert "migrate" in migrations["error"]


@pytest.mark.parametrize("token", [None, "wrong-" + "t" * 32, "unset"])
def test_without_the_metrics_token_readyz_says_only_which_checks_fail(anonymous, settings, token):
    """A failing check's error names internal hosts and ports (here the broker's);
    anyone without the metrics token sees the status and each check's ok, nothing else."""
    settings.METRICS_TOKEN = "" if token == "unset" else METRICS_TOKEN
    settings.CELERY_BROKER_URL = "redis://broker.internal.example:1/0"
    caller = Api(token) if token not in (None, "unset") else anonymous

    response = caller.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {
            "database": {"ok": True},
            "migrations": {"ok": True},
            "broker": {"ok": False},
            "worker": {"ok": False},
        },
    }
    assert "broker.internal.example" not in response.content.decode()


def test_with_the_metrics_token_readyz_gives_the_details(monitor, settings):
    settings.CELERY_BROKER_URL = "redis://broker.internal.example:1/0"
    body = json.loads(monitor.get("/readyz").content)
    broker = body["checks"]["broker"]
    assert broker["ok"] is False and "broker.internal.example" in broker["error"]
    assert body["checks"]["migrations"] == {"ok": True, "pending": 0}


def test_probes_pass_any_host_and_only_answer_get(anonymous, client):
    response = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")  # a pod's IP: not an allowed host
    assert response.status_code == 200
    assert client.get("/projects", HTTP_HOST="10.1.2.3:8000").status_code == 400
    response = anonymous.post("/healthz", {})
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"


def test_probes_stay_out_of_the_api_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/healthz", "/readyz", "/metrics"} & set(paths)
