"""A live server for the contract tests: gunicorn and a Celery worker on the test database, with
workspaces made on the fake Fly Machines API, called over HTTP the way SDK users call us."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import database_url_for_processes
from tests.live import LiveStack, ProcessFailed

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def live_stack(django_db_setup, django_db_blocker, fake_fly, tmp_path_factory):
    with django_db_blocker.unblock():
        database_url = database_url_for_processes()
    stack = LiveStack(
        database_url=database_url,
        log_dir=tmp_path_factory.mktemp("live"),
        queue="contract",
        env={"WORKSPACE_DRIVER": "fly"},
    )
    try:
        stack.start()
    except ProcessFailed as exc:
        pytest.fail(str(exc))
    yield stack
    stack.stop()


@pytest.fixture
def live(live_stack, transactional_db, fake_fly):
    """The live server, for a test whose rows it must see (so: committed, transactional_db)."""
    for process in (*live_stack.webs, *live_stack.workers):
        if not process.alive():
            process.start()
    yield live_stack
    # Before the test's rows are emptied: the workers finish their current task and stop (a TRUNCATE
    # beside a provisioning can deadlock on PostgreSQL), and what they left queued is dropped. The
    # next test starts them again.
    for worker in live_stack.workers:
        worker.stop()
    _purge(live_stack.queue)
    fake_fly.reset()


def _purge(queue: str) -> None:
    from config.celery import app

    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)


NPM_PACKAGES = Path(__file__).parent / "npm"  # package.json and package-lock.json, pinned


@pytest.fixture(scope="session")
def node_tools() -> Path:
    """The Node tools of tests/contract/npm (linters, TypeScript), installed with ``npm ci`` into
    var/npm/ (again only when the lock file changed); the folder whose ``node_modules/.bin`` holds
    them. Needs only the package registry."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are not installed: the linters and the TypeScript client need them")
    target = ROOT / "var" / "npm"
    target.mkdir(parents=True, exist_ok=True)
    lock = (NPM_PACKAGES / "package-lock.json").read_text()
    installed = target / "node_modules" / ".installed-from-lock"
    if not installed.exists() or installed.read_text() != lock:
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(NPM_PACKAGES / name, target / name)
        result = subprocess.run(  # noqa: S603
            ["npm", "ci", "--no-audit", "--no-fund"],  # noqa: S607
            cwd=target,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        installed.write_text(lock)
    return target
