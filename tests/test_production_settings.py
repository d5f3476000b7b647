"""config.settings.production: safe by default, and what a deployment runs (gunicorn with
config/gunicorn.py) answers probes and metrics as documented."""

import http.client
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import database_url_for_processes
from tests.live import WebProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
METRICS_TOKEN = "metrics-" + "p" * 32


def production_env(**overrides) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "workspaces.example.com",
        "DATABASE_URL": f"sqlite:///{settings.VAR_DIR}/production-check.sqlite3",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_BROKER_DIR": str(settings.CELERY_BROKER_DIR),
        "CELERY_TASK_DEFAULT_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
        "API_TOKEN_PEPPER": secrets.token_urlsafe(32),
        "CACHE_URL": "locmemcache://",
    }
    env.pop("DJANGO_DEBUG", None)
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def manage(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def refusal(result: subprocess.CompletedProcess) -> list[str]:
    """The problems a refused start-up names, one a line; the message alone, no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "config.settings.production refuses to start:", result.stderr
    return [line.removeprefix("- ") for line in lines[1:]]


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DATABASE_URL", "CACHE_URL", "API_TOKEN_PEPPER"])
def test_start_up_fails_naming_a_missing_variable(missing):
    result = manage("check", env=production_env(**{missing: None}))
    [problem] = refusal(result)
    assert f"missing environment variable {missing}." in problem


def test_every_missing_variable_is_named_at_once():
    result = manage("check", env=production_env(DJANGO_ALLOWED_HOSTS="", CELERY_BROKER_URL=None))
    [problem] = refusal(result)
    assert "missing environment variables DJANGO_ALLOWED_HOSTS, CELERY_BROKER_URL." in problem


KEY = secrets.token_urlsafe(50)
WEAK = {
    "a short secret key": ({"DJANGO_SECRET_KEY": "x" * 49 + "y"}, "DJANGO_SECRET_KEY is too weak"),
    "a plain secret key": ({"DJANGO_SECRET_KEY": "abcd" * 20}, "DJANGO_SECRET_KEY is too weak"),
    "a short pepper": ({"API_TOKEN_PEPPER": "x"}, "API_TOKEN_PEPPER is too short"),
    "the key as pepper": (
        {"DJANGO_SECRET_KEY": KEY, "API_TOKEN_PEPPER": KEY},
        "API_TOKEN_PEPPER is the secret key",
    ),
    "an insecure key": (
        {"DJANGO_SECRET_KEY": "insecure-development-key-change-me-in-production-0123456789"},
        "DJANGO_SECRET_KEY is a placeholder",
    ),
    "a changeme pepper": (
        {"API_TOKEN_PEPPER": "changeme" + secrets.token_hex(20)},
        "API_TOKEN_PEPPER is a placeholder",
    ),
    "an example metrics token": (
        {"METRICS_TOKEN": "example-" + secrets.token_hex(20)},
        "METRICS_TOKEN is a placeholder",
    ),
    "a short metrics token": ({"METRICS_TOKEN": "abc"}, "METRICS_TOKEN is too short"),
    "a placeholder database password": (
        {"DATABASE_URL": "postgres://workspaces:CHANGE-ME-a-database-password@db:5432/workspaces"},
        "DATABASE_URL holds a placeholder password",
    ),
    "any host": (
        {"DJANGO_ALLOWED_HOSTS": "workspaces.example.com,*"},
        "DJANGO_ALLOWED_HOSTS may not hold a wildcard (*)",
    ),
    "every .com host": (
        {"DJANGO_ALLOWED_HOSTS": ".com"},
        "DJANGO_ALLOWED_HOSTS may not hold a wildcard (.com)",
    ),
}


@pytest.mark.parametrize("values, said", WEAK.values(), ids=WEAK.keys())
def test_start_up_refuses_a_weak_or_placeholder_value_naming_it(values, said):
    problems = refusal(manage("check", env=production_env(**values)))
    assert any(problem.startswith(said) for problem in problems), problems


def test_the_placeholders_of_env_example_are_refused_each_on_its_line():
    example = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            example[name] = value
    secret_names = ["DJANGO_SECRET_KEY", "API_TOKEN_PEPPER", "METRICS_TOKEN", "FLY_API_TOKEN"]
    assert all("CHANGE-ME" in example[name] for name in secret_names)
    env = production_env(**{name: example[name] for name in secret_names})
    env["DATABASE_URL"] = f"postgres://workspaces:{example['POSTGRES_PASSWORD']}@postgres:5432/workspaces"

    problems = refusal(manage("check", env=env))

    for name in [*secret_names]:
        assert f"{name} is a placeholder (like .env.example's): replace it with a random value." in problems
    assert "DATABASE_URL holds a placeholder password: replace it with a random one." in problems


def test_strong_distinct_values_start():
    env = production_env(
        METRICS_TOKEN=secrets.token_urlsafe(32), DJANGO_ALLOWED_HOSTS=".workspaces.example.com"
    )
    result = manage("check", env=env)
    assert result.returncode == 0, result.stderr


def without_configuration() -> dict[str, str]:
    """This environment with no settings module and none of the values production needs."""
    names = ("DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY", "API_TOKEN_PEPPER", "DJANGO_ALLOWED_HOSTS")
    names += ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL")
    return {k: v for k, v in os.environ.items() if k not in names}


SERVERS = {
    "gunicorn": [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"],
    "celery worker": [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "never-consumed"],
    "asgi": [sys.executable, "-c", "import config.asgi"],
}


@pytest.mark.parametrize("command", SERVERS.values(), ids=SERVERS.keys())
def test_a_server_started_without_a_settings_module_refuses_to_start(command):
    """The WSGI, ASGI and Celery entry points default to the production
    settings, so a server started with nothing configured stops, naming what is missing, instead of
    serving with development values."""
    env = {**without_configuration(), "PORT": str(free_port()), "WEB_CONCURRENCY": "1"}
    result = subprocess.run(  # noqa: S603 (our own command line)
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "config.settings.production refuses to start" in result.stderr
    assert "missing environment variables DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS" in result.stderr


def test_production_hashes_passwords_with_argon2_and_keeps_debug_off():
    code = (
        "from django.conf import settings; from django.contrib.auth.hashers import make_password; "
        "print(make_password('s3cret-password').split('$')[0], settings.DEBUG, settings.LOGGING['formatters'])"
    )
    result = manage("shell", "-c", code, env=production_env(DJANGO_DEBUG="true"))
    assert result.returncode == 0, result.stderr
    algorithm, debug, *_ = result.stdout.strip().splitlines()[-1].split()
    assert (algorithm, debug) == ("argon2", "False")
    assert "'fmt': 'json'" in result.stdout


class ProductionWeb(WebProcess):
    """gunicorn as the deployment recipes run it: ``gunicorn -c config/gunicorn.py config.wsgi``."""

    name = "production-web"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"]

    def ready(self) -> bool:
        try:
            return get(self.port, "/healthz")[0] == 200
        except OSError:
            return False


def get(port: int, path: str, host: str = "10.0.0.7:8000", headers=None) -> tuple[int, dict, bytes]:
    """A plain-HTTP GET that follows no redirect, with the Host header an orchestrator would send."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host, **(headers or {})})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.mark.worker
def test_under_gunicorn_probes_and_metrics_answer_over_plain_http_by_ip(worker, tmp_path):
    port = free_port()
    env = production_env(
        DATABASE_URL=database_url_for_processes(),
        PORT=str(port),
        WEB_CONCURRENCY="2",
        METRICS_TOKEN=METRICS_TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        DJANGO_SETTINGS_MODULE="config.settings.production",
    )
    web = ProductionWeb(env, tmp_path, port=port)
    web.env = env  # exactly these settings (WebProcess would default to the test settings)
    web.start()
    try:
        status, headers, body = get(port, "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert headers["X-Request-ID"]

        status, _, body = get(port, "/readyz")
        assert status == 200, body
        assert {name: check["ok"] for name, check in json.loads(body)["checks"].items()} == {
            "database": True,
            "migrations": True,
            "broker": True,
            "worker": True,
        }

        # Everything else: allowed hosts only, and HTTPS (the proxy says so in X-Forwarded-Proto).
        assert get(port, "/projects")[0] == 400
        status, headers, _ = get(port, "/projects", host="workspaces.example.com")
        assert status == 301 and headers["Location"] == "https://workspaces.example.com/projects"
        status, headers, _ = get(
            port, "/projects", host="workspaces.example.com", headers={"X-Forwarded-Proto": "https"}
        )
        assert status == 401 and "Strict-Transport-Security" in headers

        for _ in range(6):  # spread over both gunicorn processes
            get(port, "/healthz")
        assert get(port, "/metrics")[0] == 401
        status, _, body = get(port, "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert status == 200
        text = body.decode()
        # Multiprocess mode: one scrape counts the requests of every gunicorn process.
        line = next(
            line
            for line in text.splitlines()
            if line.startswith("http_request_duration_seconds_count{")
            and 'route="healthz"' in line
            and 'status="200"' in line
        )
        assert float(line.rsplit(" ", 1)[1]) >= 8
        for name in ["workspaces{", "workspace_attempt_duration_seconds", "celery_queue_length{"]:
            assert name in text
        assert list((tmp_path / "prometheus").glob("*.db"))
    finally:
        web.stop()
    log = web.log()
    assert '"logger": "config.requests"' in log  # JSON lines, gunicorn's own too:
    assert '"logger": "gunicorn.error"' in log
