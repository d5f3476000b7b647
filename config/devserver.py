"""`make run`: the whole system on the embedded default, in one command.

Migrates the database, makes a demo user with an API token (both kept across runs) and a demo project (whose repository
is a small local git repository, so that cloning works with no network), starts the web server, a
Celery worker and a Celery worker for the clone queue, and prints how to call the API. Ctrl-C stops them. Workspaces are real detached
processes, like machines at a provider: they keep running after Ctrl-C.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8000"))
DEMO_EMAIL = "demo@example.com"


def main() -> int:
    # `make run` sets DJANGO_SETTINGS_MODULE=config.settings.development (a random key and pepper per
    # checkout, in var/). It cannot be defaulted here: importing the `config` package, which
    # `python -m config.devserver` does first, has already defaulted it to production
    # (config/celery.py). The web and worker started below inherit it.
    # Machines send their heartbeats to this server, wherever HOST and PORT put it.
    os.environ.setdefault("WORKSPACE_HEARTBEAT_BASE_URL", f"http://{HOST}:{PORT}")
    # The demo project clones a repository under var/ (file://), a scheme a deployment leaves off (it
    # would let a user copy any host directory into a workspace); on your own machine, it is allowed.
    # The web server and both workers inherit it.
    os.environ.setdefault("PROJECT_REPO_URL_SCHEMES", "https,http,ssh,git,file")
    import django

    from config.settings import SettingsRefused

    try:
        django.setup()
    except SettingsRefused as exc:
        print(
            f"{exc}\nFor development, run `make run` (it uses config.settings.development).", file=sys.stderr
        )
        return 1
    from django.conf import settings
    from django.core.management import call_command

    if _port_in_use(HOST, PORT):
        print(f"Port {PORT} on {HOST} is in use. Stop what runs there, or choose another: PORT=8001 make run")
        return 1
    call_command("migrate", verbosity=0)
    token, password, project = _demo(settings)

    python = sys.executable
    worker_env = dict(os.environ)
    if os.geteuid() == 0:
        # Celery warns on every start that it runs as root. On a developer's own machine (often a
        # container where everything is root) that is how it is meant to run; the machines it
        # starts never run as root here either way, so the warning only hides real ones. Only
        # this warning, only in make run's workers: a deployment's workers still print it.
        worker_env["PYTHONWARNINGS"] = "ignore:You're running the worker with superuser privileges"
    # --beat: the worker also runs the periodic tasks (idle auto-stop); one process, fine for one host.
    worker = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
        [python, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO", "--concurrency=2"]
        + ["--beat", "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")],
        cwd=ROOT,
        env=worker_env,
    )
    # The clone worker: provisioning runs that clone a repository have their own queue and slots
    # (WORKSPACE_CLONE_QUEUE), so a repository that hangs never holds the worker above.
    clone_worker = subprocess.Popen(  # noqa: S603
        [python, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO", "--concurrency=2"]
        + ["-Q", settings.WORKSPACE_CLONE_QUEUE, "-n", "clones@%h"],
        cwd=ROOT,
        env=worker_env,
    )
    web = subprocess.Popen(  # noqa: S603
        [python, "manage.py", "runserver", f"{HOST}:{PORT}", "--noreload"], cwd=ROOT
    )
    children = {"the web server": web, "the worker": worker, "the clone worker": clone_worker}
    asked_to_stop = []

    def stop(*_):
        for child in children.values():
            if child.poll() is None:
                child.terminate()

    def interrupted(*_):
        # Ctrl-C reaches the children too (one process group): they stop themselves, and we wait.
        asked_to_stop.append(True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, interrupted)
    status = 0
    try:
        if not _wait_for_port(HOST, PORT, web):
            print("The web server did not start; see the messages above.")
            stop()
            return 1
        _print_instructions(settings, token, password, project)
        while not asked_to_stop and all(child.poll() is None for child in children.values()):
            time.sleep(0.2)
        if not asked_to_stop:
            name, child = next((name, child) for name, child in children.items() if child.poll() is not None)
            print(f"{name.capitalize()} exited (status {child.returncode}); stopping the rest.", flush=True)
            status = 1
        else:
            print("\nStopping the web server and the workers...", flush=True)
    finally:
        stop()
        for child in children.values():
            child.wait(timeout=20)
    if status == 0:
        print(
            "Stopped. Workspace machines keep running: `.venv/bin/python manage.py machines list` shows "
            "them, `machines stop --all` stops them.",
            flush=True,
        )
    return status
    return 0


def _demo(settings):
    """The demo user (an operator too, so the admin can be tried), its token, and a project.

    The password and the token are made once and kept in var/demo-credentials.json (0600), so that
    what the last run printed still works and each run does not add a token: a stored one is reused
    while it still logs in / authenticates (a token revoked meanwhile, or a password changed in the
    admin, is replaced, and the file rewritten)."""
    from accounts import tokens
    from accounts.models import ApiToken, User
    from accounts.services import api_token_create, user_create
    from projects.models import Project
    from projects.services import project_create

    path = settings.VAR_DIR / "demo-credentials.json"
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    user = User.objects.filter(email=DEMO_EMAIL).first() or user_create(email=DEMO_EMAIL, display_name="Demo")
    password = stored.get("password")
    if not password or not user.check_password(password):
        password = secrets.token_urlsafe(12)
        user.set_password(password)
    user.is_staff = user.is_superuser = user.is_active = True
    user.save()
    token = stored.get("token")
    key = tokens.parse_key(token) if token else None
    row = ApiToken.objects.filter(key=key, user=user).first() if key else None
    if row is None or not row.is_usable or not tokens.matches(token, row.digest):
        token = api_token_create(user=user, name="make run").secret
    if stored != {"password": password, "token": token}:
        _write_private(path, {"password": password, "token": token})
    project = Project.objects.filter(owner=user, name="demo").first()
    if project is None:
        project = project_create(
            owner=user, name="demo", description="Made by make run", repo_url=_demo_repository(settings)
        )
    return token, password, project


def _write_private(path: Path, data: dict) -> None:
    """Write ``data`` as JSON readable by this user only (0600 from the start, replaced atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(data, file)
    os.replace(tmp, path)


def _demo_repository(settings) -> str | None:
    """A local git repository for the demo project, so that `git clone` works without a network."""
    if shutil.which("git") is None:
        return None
    repo = settings.VAR_DIR / "demo-repo"
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        (repo / "README.md").write_text(
            "# Demo project\n\nCloned into every workspace of the demo project.\n"
        )
        env = {**os.environ, "GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": DEMO_EMAIL}
        env |= {"GIT_COMMITTER_NAME": "demo", "GIT_COMMITTER_EMAIL": DEMO_EMAIL}
        for args in (
            ["init", "-q", "-b", "main"],
            ["add", "README.md"],
            ["commit", "-q", "-m", "Demo project"],
        ):
            subprocess.run(["git", *args], cwd=repo, env=env, check=True)  # noqa: S603, S607
    return f"file://{repo}"


def _print_instructions(settings, token, password, project):
    base = f"http://{HOST}:{PORT}"
    auth = f'-H "Authorization: Bearer {token}"'
    print(
        f"""
================================================================================
 Running: web on {base}, a Celery worker with beat and one for clones, driver '{settings.WORKSPACE_DRIVER}'.

 Create a workspace in the demo project:

   curl -s -X POST {base}/projects/{project.id}/workspaces \\
     {auth} \\
     -H "Content-Type: application/json" \\
     -d '{{"hardware": {{"cpus": 1, "memory_mb": 512}}}}'

 Watch it reach "running" (use the "id" from the answer):

   curl -s {base}/workspaces/WORKSPACE_ID {auth}

 Then its process answers on its private_ip:  curl http://PRIVATE_IP:{settings.LOCAL_DRIVER_AGENT_PORT}/health

 API docs: {base}/docs     Admin: {base}/admin/  ({DEMO_EMAIL} / {password})
 Ctrl-C stops web and workers; workspace processes keep running, like machines
 (`.venv/bin/python manage.py machines list` shows them, `machines stop --all` stops them).
================================================================================
""",
        flush=True,
    )


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) == 0


def _wait_for_port(host: str, port: int, process: subprocess.Popen, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if _port_in_use(host, port):
            return True
        time.sleep(0.1)
    return False


if __name__ == "__main__":
    sys.exit(main())
