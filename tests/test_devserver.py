"""`make run`'s set-up (config/devserver.py): the demo credentials it prints survive the next run."""

import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.test import Client

from accounts.models import ApiToken
from config import devserver
from tests.live import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def profile(token):
    return Client().get("/profile", headers={"Authorization": f"Bearer {token}"})


def logs_in(password) -> bool:
    client = Client()
    client.post("/admin/login/", {"username": devserver.DEMO_EMAIL, "password": password})
    return client.get("/admin/").status_code == 200


def test_a_second_run_keeps_the_demo_password_and_token(var_dir, settings):
    token, password, project = devserver._demo(settings)
    again_token, again_password, again_project = devserver._demo(settings)

    assert (again_token, again_password, again_project) == (token, password, project)
    assert profile(token).status_code == 200
    assert logs_in(password)
    assert ApiToken.objects.filter(user__email=devserver.DEMO_EMAIL, name="make run").count() == 1
    stored = var_dir / "demo-credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert password in stored.read_text() and token in stored.read_text()


def test_a_revoked_token_or_a_changed_password_is_replaced(var_dir, settings):
    token, password, _ = devserver._demo(settings)
    ApiToken.objects.filter(user__email=devserver.DEMO_EMAIL).update(revoked_at="2026-01-01T00:00:00Z")
    user = ApiToken.objects.get().user
    user.set_password("changed in the admin")
    user.save()

    new_token, new_password, _ = devserver._demo(settings)

    assert new_token != token and new_password != password
    assert profile(new_token).status_code == 200
    assert logs_in(new_password)
    assert new_token in (var_dir / "demo-credentials.json").read_text()


# --- make run itself, as a newcomer runs it (twice) ---------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
# What make run's output must never say on a normal start and stop.
NOISE = [
    "No hostname was supplied",
    "SecurityWarning",
    "superuser privileges",
    "A process stopped",
    "Traceback",
]


class MakeRun:
    """``python -m config.devserver`` (what ``make run`` runs) on a var/ of its own and a free port,
    in a session of its own so that Ctrl-C can be sent to its whole process group as a terminal does."""

    def __init__(self, var_dir: Path, port: int, log: Path):
        removed = ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_BROKER_DIR", "LOCAL_DRIVER_ROOT", "CACHE_URL")
        env = {k: v for k, v in os.environ.items() if k not in removed and not k.startswith("CELERY_")}
        env |= {
            "DJANGO_SETTINGS_MODULE": "config.settings.development",
            "VAR_DIR": str(var_dir),
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
        }
        self.port, self.log = port, log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                [sys.executable, "-m", "config.devserver"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.process.poll() is None, f"make run exited:\n{self.output()[-4000:]}"
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output()[-4000:]}"
            time.sleep(0.1)

    def credentials(self) -> tuple[str, str]:
        output = self.output()
        token = re.search(r"Bearer (wsk_[A-Za-z0-9_-]+)", output).group(1)
        password = re.search(rf"{re.escape(devserver.DEMO_EMAIL)} / (\S+)\)", output).group(1)
        return token, password

    def ctrl_c(self) -> int:
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise


def test_make_run_twice_logs_each_request_once_warns_of_nothing_and_keeps_its_credentials(tmp_path):
    seen = []
    for run in (1, 2):
        make_run = MakeRun(tmp_path / "var", free_port(), tmp_path / f"run-{run}.log")
        try:
            make_run.wait_for("Ctrl-C stops web and workers")
            make_run.wait_for("celery@")  # the workers have started (and said whatever they say)
            make_run.wait_for("clones@")
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            # A path of this run's own: our one request line names it (runserver's would too).
            with pytest.raises(urllib.error.HTTPError) as answer:
                opener.open(f"http://127.0.0.1:{make_run.port}/newcomer-{run}", timeout=10)
            assert answer.value.code == 404
            make_run.wait_for(f"/newcomer-{run}")
            seen.append(make_run.credentials())
        finally:
            status = make_run.ctrl_c()
        output = make_run.output()
        assert status == 0, output[-4000:]
        assert sum(f"/newcomer-{run}" in line for line in output.splitlines()) == 1, output[-4000:]
        for noise in NOISE:
            assert noise not in output, f"{noise!r} in:\n{output[-4000:]}"
        assert "Stopped. Workspace machines keep running" in output

    assert seen[0] == seen[1]


def test_runserver_logs_a_request_once(tmp_path):
    """make run's web server is runserver, whose own access line would repeat ours."""
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.development", "VAR_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    log = tmp_path / "runserver.log"
    with open(log, "wb") as out:
        web = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 60
        while True:
            try:
                opener.open(f"http://127.0.0.1:{port}/newcomer-path", timeout=5)
            except urllib.error.HTTPError as answer:
                assert answer.code == 404
                break
            except OSError:
                assert web.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
    finally:
        web.terminate()
        web.wait(timeout=30)

    lines = [line for line in log.read_text().splitlines() if "/newcomer-path" in line]
    assert len(lines) == 1 and "[config.requests]" in lines[0], lines
