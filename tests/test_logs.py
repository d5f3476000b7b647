"""Structured logs: a request id on every response and every log line of the request, carried to the
tasks it sends and their provider calls; and no secret in any log line, even at DEBUG."""

import io
import json
import logging
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import path
from django.utils import timezone

from config.operations.logs import formatter, scrub
from tests.conftest import Api, database_url_for_processes, wait_for
from tests.factories import UserFactory, WorkspaceFactory, make_token
from tests.live import WorkerProcess
from workspaces import reconciler
from workspaces.agent_tokens import agent_token_for
from workspaces.drivers import get_driver

pytestmark = pytest.mark.django_db

SMALL = {"hardware": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256, "volume_size_gb": 1}}


def boom(request):
    raise RuntimeError("a bug")


# A URLconf with a view that fails, for the 500 test (settings.ROOT_URLCONF = __name__).
urlpatterns = [path("boom", boom)]


@pytest.fixture
def captured():
    """Every log line of this process, at DEBUG, rendered as in production (JSON)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    root.removeHandler(handler)
    root.setLevel(level)


# --- the request id -------------------------------------------------------------------------------------


def test_every_response_carries_a_request_id_and_so_do_the_log_lines_of_its_request(api, captured):
    response = api.get("/projects")
    request_id = response["X-Request-ID"]
    assert response.status_code == 200 and len(request_id) == 32

    (line,) = [line for line in captured() if line["logger"] == "config.requests"]
    assert line["request_id"] == request_id
    assert (line["method"], line["path"], line["status"]) == ("GET", "/projects", 200)
    assert line["level"] == "info" and line["timestamp"].endswith("Z")

    other = api.get("/projects")["X-Request-ID"]
    assert other != request_id


def test_a_plain_incoming_request_id_is_kept_and_anything_else_replaced(api):
    assert api.get("/projects", headers={"HTTP_X_REQUEST_ID": "lb-1234.abc"})["X-Request-ID"] == "lb-1234.abc"
    for unsafe in ["has space", "x" * 200, 'quote"d', "new\nline", ""]:
        returned = api.get("/projects", headers={"HTTP_X_REQUEST_ID": unsafe})["X-Request-ID"]
        assert returned != unsafe and len(returned) == 32


def test_404s_admin_pages_static_files_and_500s_carry_it_too(anonymous, client, settings):
    assert anonymous.get("/no/such/thing").status_code == 404
    assert anonymous.get("/no/such/thing")["X-Request-ID"]
    assert client.get("/admin/login/")["X-Request-ID"]
    assert client.get("/static/admin/css/base.css")["X-Request-ID"]
    assert anonymous.get("/healthz")["X-Request-ID"]

    settings.ROOT_URLCONF = __name__
    client.raise_request_exception = False
    response = client.get("/boom", HTTP_X_REQUEST_ID="req-500")
    assert response.status_code == 500 and response["X-Request-ID"] == "req-500"


def test_the_scrubber_removes_credentials_from_any_line():
    token = "wsk_abcdefABCDEF_" + "s" * 40
    agent = agent_token_for("6f1c2b9e-8a1d-4c3e-9f00-123456789abc")
    line = scrub(f"Authorization: Bearer {token} token={token} agent={agent} db=postgres://me:hunter22@db/x")
    assert token not in line and "s" * 40 not in line
    assert "Bearer [redacted]" in line
    assert agent not in line and "hunter22" not in line
    assert "wsk_abcdefABCDEF_[redacted]" in line  # the public key part still says which token


# --- across processes, and no secrets ---------------------------------------------------------------------


@pytest.fixture
def debug_worker(celery_worker_process, transactional_db, fake_fly, tmp_path):
    """A worker of our own that logs JSON at DEBUG (the shared worker is stopped meanwhile; the
    ``worker`` fixture starts it again for the tests that need it)."""
    celery_worker_process.stop()
    process = WorkerProcess(
        {"DATABASE_URL": database_url_for_processes(), "LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG"},
        tmp_path,
        queue=settings.CELERY_TASK_DEFAULT_QUEUE,
        name="debug-worker",
    )
    process.start()
    yield process
    process.stop()


def worker_lines(process) -> list[dict]:
    lines = []
    for raw in process.log().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue  # Celery's banner and other plain prints
    return lines


@pytest.mark.worker
def test_a_request_and_its_task_share_the_request_id_and_no_secret_is_ever_logged(
    debug_worker, fake_fly, captured, client, settings
):
    settings.WORKSPACE_DRIVER = "fly"
    fake_fly.reset()
    password = "correct horse battery staple 42"
    user = UserFactory(is_staff=True, is_superuser=True)
    user.set_password(password)
    user.save()
    # An operator signs in to the admin with a password...
    response = client.post("/admin/login/?next=/admin/", {"username": user.email, "password": password})
    assert response.status_code == 302, response.content
    # ...a user makes an API token with another, and uses it.
    api = Api(make_token(user))
    made = api.post("/auth/tokens", {"name": "laptop"})
    assert made.status_code == 201
    secret = made.json()["token"]
    api = Api(secret)
    project = api.post("/projects", {"name": "logs"}).json()

    response = api.post(
        f"/projects/{project['id']}/workspaces", SMALL, headers={"HTTP_X_REQUEST_ID": "create-123"}
    )
    assert response.status_code == 201, response.content
    workspace_id = response.json()["id"]
    assert wait_for(api, workspace_id)["status"] == "running"
    agent_token = agent_token_for(workspace_id)
    assert Api(agent_token).post(f"/workspaces/{workspace_id}/heartbeat", {}).status_code == 204

    web = captured()
    assert any(line.get("request_id") == "create-123" for line in web)
    assert all(
        line.get("request_id") == "create-123"
        for line in web
        if line.get("path", "").endswith("/workspaces") and line.get("method") == "POST"
    )

    deadline = time.monotonic() + 10
    while True:  # the worker's last lines may still be on their way to its log file
        task_lines = [line for line in worker_lines(debug_worker) if line.get("request_id") == "create-123"]
        if any(line.get("event", "").startswith("provision attempt 1 succeeded") for line in task_lines):
            break
        assert time.monotonic() < deadline, debug_worker.log()[-5000:]
        time.sleep(0.2)
    assert {line["workspace_id"] for line in task_lines} == {workspace_id}
    assert all(
        line["task_id"] and line["task"] == "workspaces.tasks.provision_workspace" for line in task_lines
    )
    provider_calls = [line for line in task_lines if line.get("provider") == "fly"]
    assert provider_calls and all(line["fly_request_id"] for line in provider_calls)
    assert {line["http_method"] for line in provider_calls} >= {"GET", "POST"}

    logs = debug_worker.log() + "\n".join(json.dumps(line) for line in web)
    assert any(line["level"] == "debug" for line in web + worker_lines(debug_worker))  # DEBUG was on
    for needle in [
        secret,
        secret.rsplit("_", 1)[1],
        agent_token,
        agent_token.rsplit("_", 1)[1],
        settings.FLY_API_TOKEN,
        password,
        settings.API_TOKEN_PEPPER,
    ]:
        assert needle not in logs, f"{needle[:8]}... was logged"

    get_driver("fly").destroy(workspace_id)


def test_the_reconcilers_lines_about_a_workspace_carry_its_id(captured, project, fake_fly, settings):
    settings.WORKSPACE_DRIVER = "fly"
    settings.WORKSPACE_STATE_CEILINGS_SECONDS = {"creating": 60}
    fake_fly.reset()
    stuck = WorkspaceFactory(
        project=project,
        status="creating",
        status_changed_at=timezone.now() - timedelta(hours=1),
        memory_mb=256,
        driver="fly",
    )
    assert reconciler.reconcile().timed_out == [str(stuck.id)]

    fly_calls = [line for line in captured() if line.get("provider") == "fly"]
    # Cleaning up what was made for it: each call carries the workspace's id...
    assert [line for line in fly_calls if line.get("workspace_id") == str(stuck.id)]
    # ...and the inventory listing, about no one workspace, carries none.
    assert {line.get("workspace_id") for line in fly_calls} == {str(stuck.id), None}
