"""Fixtures shared by every test: users with tokens, an API client, and a real Celery worker."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import ProjectFactory, UserFactory, make_token
from workspaces.drivers import get_driver

ROOT = Path(__file__).resolve().parent.parent


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


def _database_url_for_worker() -> str:
    """The URL of the database this test run uses (the test database, not the configured one)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


class WorkerProcess:
    """A real ``celery worker`` process on the configured broker (Redis in CI, the filesystem broker
    without configuration), consuming the test run's own queue and using the test database. Tests
    may kill it (``kill()``) and start it again (``start()``), as an operator's supervisor would."""

    def __init__(self, database_url: str, log_dir: Path):
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url,
        }
        self.log_dir = log_dir
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.log_path = self.log_dir / f"worker-{self.starts}.log"
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--loglevel=INFO"]
        command += ["--without-mingle", "--without-gossip", "-Q", settings.CELERY_TASK_DEFAULT_QUEUE]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )  # noqa: S603
        deadline = time.monotonic() + 60
        while b"ready." not in self.log_path.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"The Celery worker did not start:\n{self.log_path.read_text()}")
            time.sleep(0.1)

    def kill(self, sig=signal.SIGKILL) -> None:
        self.process.send_signal(sig)
        self.process.wait(timeout=30)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if not self.alive():
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory):
    """The test run's worker, started once and shared (a test that kills it starts it again)."""
    from config.celery import app

    with django_db_blocker.unblock():
        database_url = _database_url_for_worker()
    app.control.purge()  # messages left by an earlier, interrupted run
    worker = WorkerProcess(database_url, tmp_path_factory.mktemp("worker"))
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
def worker(celery_worker_process, transactional_db, local_machines):
    """A running worker, for a test whose rows it must see (so: committed, transactional_db)."""
    if not celery_worker_process.alive():
        celery_worker_process.start()
    return celery_worker_process
