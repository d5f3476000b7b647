"""Fixtures shared by every test: users with tokens, an API client, and a real Celery worker."""

import time

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import ProjectFactory, UserFactory, make_token
from tests.live import WorkerProcess
from workspaces.drivers import get_driver


class Api:
    """An API client that speaks JSON and carries a Bearer token, as curl and SDK users do."""

    def __init__(self, token: str | None = None):
        self.client = APIClient()
        self.token = token

    def _headers(self, headers):
        merged = {"HTTP_AUTHORIZATION": f"Bearer {self.token}"} if self.token else {}
        merged.update(headers or {})
        return merged

    def get(self, path, params=None, headers=None):
        return self.client.get(path, params, **self._headers(headers))

    def post(self, path, data=None, headers=None, raw=None, content_type="application/json"):
        if raw is not None:
            return self.client.generic("POST", path, raw, content_type=content_type, **self._headers(headers))
        if data is None:
            return self.client.post(path, **self._headers(headers))
        return self.client.post(path, data, format="json", **self._headers(headers))


def wait_for(api: Api, workspace_id, statuses=("running", "error"), timeout: float = 90) -> dict:
    """Poll a workspace as a client does until its status is one of ``statuses`` (or ``timeout``
    seconds pass); the last body it answered. Tests then assert on that body."""
    deadline = time.monotonic() + timeout
    while True:
        body = api.get(f"/workspaces/{workspace_id}").json()
        if body["status"] in statuses or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def api(user):
    """The API as ``user``."""
    return Api(make_token(user))


@pytest.fixture
def api_for(db):
    """The API as any user: ``api_for(other_user)``."""
    return lambda someone: Api(make_token(someone))


@pytest.fixture
def anonymous(db):
    return Api()


@pytest.fixture
def project(user):
    return ProjectFactory(owner=user)


@pytest.fixture
def local_machines():
    """Destroys every machine the local driver holds when the test ends: no process outlives a test."""
    driver = get_driver("local")
    yield driver
    for machine in driver.list_machines():
        driver.destroy(machine.workspace_id)


def database_url_for_processes() -> str:
    """The URL of the database this test run uses (the test database, not the configured one)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory):
    """The test run's worker, started once and shared (a test that kills it starts it again)."""
    from config.celery import app

    with django_db_blocker.unblock():
        database_url = database_url_for_processes()
    app.control.purge()  # messages left by an earlier, interrupted run
    worker = WorkerProcess(
        # Tests make file:// projects (with override_settings in the test process): the worker
        # that clones them allows the scheme too.
        {"DATABASE_URL": database_url, "PROJECT_REPO_URL_SCHEMES": "https,http,ssh,git,file"},
        tmp_path_factory.mktemp("worker"),
        queue=settings.CELERY_TASK_DEFAULT_QUEUE,
        clone_queue=settings.WORKSPACE_CLONE_QUEUE,
    )
    worker.start()
    yield worker
    worker.stop()
    print(f"--- celery worker log ---\n{worker.log_path.read_text()[-5000:]}")


@pytest.fixture(scope="session")
def fake_fly():
    """The fake Fly Machines API, on the port the test settings point the fly driver at. Per-action
    rate limits are off here (tests switch 429s on as a fault); the driver's tests cover them."""
    from tests.fakes.fly import FakeFly

    fake = FakeFly(port=settings.FAKE_FLY_PORT, rate_limits=None).start()
    yield fake
    fake.stop()


@pytest.fixture
def tasks_not_sent(monkeypatch):
    """Workspace tasks are recorded here, as ``(name, args, queue)``, instead of reaching the broker
    (the far side of ``workspaces.scheduling``); other tasks are sent as usual. ``name`` is the
    task's short name (``provision_workspace``), ``queue`` None for the default queue.

    For transactional tests about the API alone: a worker still running from an earlier test would
    otherwise provision their workspaces while their teardown empties the tables, and on PostgreSQL
    that TRUNCATE can deadlock with it. And for tests of what is queued, and where."""
    from config.celery import app
    from workspaces import scheduling

    send_task = app.send_task
    sent = []

    def record(name, args=None, kwargs=None, **options):
        if name not in scheduling.task_names():  # read at send: a test may add an operation
            return send_task(name, args, kwargs, **options)
        sent.append((name.rpartition(".")[2], tuple(args or ()), options.get("queue")))
        return None

    monkeypatch.setattr(app, "send_task", record)
    return sent


@pytest.fixture
def fly(fake_fly, settings):
    """Workspaces made in this test use the fly driver, against a clean fake; whatever the test left
    there is destroyed by the reconciler, and the fake is clean again for the next test."""
    from workspaces import reconciler

    settings.WORKSPACE_DRIVER = "fly"
    fake_fly.reset()
    yield fake_fly
    fake_fly.reset_faults()
    reconciler.reconcile()
    fake_fly.reset()


@pytest.fixture
def redis_url():
    """A Redis database of the tests' own (13), for tests of our Redis adapters; skipped without Redis."""
    import redis

    url = "redis://127.0.0.1:6379/13"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("needs Redis on 127.0.0.1:6379 (.ci/run starts it for both passes)")
    return url


@pytest.fixture
def worker(celery_worker_process, transactional_db, local_machines):
    """A running worker, for a test whose rows it must see (so: committed, transactional_db)."""
    if not celery_worker_process.alive():
        celery_worker_process.start()
    return celery_worker_process
