"""Clones a hostile user could abuse.

* A clone aimed at an internal address never reaches it: the worker resolves the host, checks every
  address against the egress policy and connects to the address it checked, and the workspace's
  error_message says why without anything the remote could have answered.
* git's failures are told in fixed words, so that error_message is no port scanner.
* A repository that accepts the connection and never answers holds only the clone queue's worker:
  another user's workspace without a repository reaches ``running`` meanwhile.
* git and its helpers see none of the control plane's secrets.

The live tests run gunicorn and Celery workers of their own (tests/live.py), on a queue of their own,
because they need workers configured unlike the test run's shared one.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import database_url_for_processes
from tests.factories import ProjectFactory, UserFactory, make_token
from tests.live import LiveStack
from workspaces.drivers.base import DriverError, MachineSpec
from workspaces.drivers.local import LocalDriver
from workspaces.hardware import Hardware

HARDWARE = Hardware(cpu_kind="shared", cpus=1, memory_mb=512, volume_size_gb=1)
SMALL = {"hardware": {"cpus": 1, "memory_mb": 512, "volume_size_gb": 1}}
DEADLINE = 60.0  # an upper bound on waiting for a condition, never an assertion about speed


def wait_until(predicate, what: str, timeout: float = DEADLINE):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


class Listener:
    """A TCP server on 127.0.0.1 that records every connection and, by default, never answers
    (a repository that hangs); ``reply`` is sent to each connection instead, then it is closed."""

    def __init__(self, reply: bytes | None = None):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.reply = reply
        self.connections: list[socket.socket] = []
        self.received: list[bytes] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.server.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(connection)
            if self.reply is not None:
                connection.settimeout(5)
                try:
                    self.received.append(connection.recv(65536))
                except TimeoutError:
                    self.received.append(b"")  # the client speaks second (ssh)
                connection.sendall(self.reply)
                connection.close()

    def close(self):
        self.stopped.set()
        self.thread.join()
        self.server.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def listener():
    made = []

    def make(reply: bytes | None = None) -> Listener:
        made.append(Listener(reply))
        return made[-1]

    yield make
    for each in made:
        each.close()


def spec(workspace_id: str, repo_url: str) -> MachineSpec:
    return MachineSpec(workspace_id=workspace_id, hardware=HARDWARE, repo_url=repo_url)


@pytest.fixture
def driver(tmp_path: Path):
    driver = LocalDriver(root=tmp_path / "machines", port=0, clone_timeout=60)
    yield driver
    for machine in driver.list_machines():
        driver.destroy(machine.workspace_id)


# --- The egress policy at clone time ----------------------------------------------------------------


@pytest.mark.django_db
def test_a_name_that_resolves_to_loopback_is_refused_before_connecting(driver, listener, settings):
    settings.EGRESS_ALLOWED_NETWORKS = []
    server = listener()

    with pytest.raises(DriverError) as failure:
        driver.create(spec("ws-name", f"http://localhost:{server.port}/repo.git"))

    assert failure.value.message in {
        f"Could not clone http://localhost:{server.port}/repo.git: the address {address} is not allowed (loopback)."
        for address in ("127.0.0.1", "::1")
    }
    assert server.connections == []
    assert driver.list_machines() == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "reply",
    [
        b"-ERR wrong number of arguments for 'get' command REDIS-MARKER\r\n",
        b"HTTP/1.1 400 Bad Request\r\nServer: nginx-MARKER\r\nContent-Length: 0\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.2p1 MARKER\r\n",
        None,  # nothing listens (the listener is closed before the clone)
    ],
)
def test_what_a_remote_answers_is_never_echoed(driver, listener, reply):
    server = listener(reply if reply is not None else b"")
    port = server.port
    if reply is None:
        server.close()

    with pytest.raises(DriverError) as failure:
        driver.create(spec("ws-scan", f"git://127.0.0.1:{port}/repo.git"))

    # The same words whatever answered: Redis, a web server, an ssh server or nothing at all.
    assert failure.value.message == (
        f"Could not clone git://127.0.0.1:{port}/repo.git: "
        "could not connect, or the server did not answer as a git server."
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("scheme", "url"),
    [
        ("http", "http://git.example.test:{port}/org/repo.git"),
        ("git", "git://git.example.test:{port}/org/repo.git"),
        ("ssh", "ssh://git@git.example.test:{port}/org/repo.git"),
    ],
)
def test_git_connects_to_the_address_that_was_checked_not_to_a_new_lookup(
    driver, listener, monkeypatch, scheme, url
):
    # The name resolves (for the policy's check, in this process) to the listener's address; git,
    # in its own process, could not resolve it at all (.test is reserved): it can only get there
    # through the address it was given. A rebinding DNS server gets no second question.
    server = listener(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    real = socket.getaddrinfo
    looked_up = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "git.example.test":
            looked_up.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    with pytest.raises(DriverError):
        driver.create(spec(f"ws-{scheme}", url.format(port=server.port)))

    assert looked_up == ["git.example.test"]
    wait_until(lambda: server.received, "git to connect")
    if scheme == "http":  # the name is kept where it matters (Host, TLS), only the address is pinned
        assert f"Host: git.example.test:{server.port}".encode() in server.received[0]


# --- git's environment ----------------------------------------------------------------------------------

SECRETS = {
    "DJANGO_SECRET_KEY": "secret-key-MARKER-1",
    "API_TOKEN_PEPPER": "pepper-MARKER-2",
    "FLY_API_TOKEN": "fly-token-MARKER-3",
    "METRICS_TOKEN": "metrics-MARKER-4",
    "DATABASE_URL": "postgres://user:db-password-MARKER-5@db.internal/workspaces",
}


def processes_mentioning(text: str) -> dict[int, list[str]]:
    """Every process whose command line mentions ``text``: {pid: argv}."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if any(text in arg for arg in argv):
                found[int(entry.name)] = argv
    return found


@pytest.mark.django_db
def test_git_and_its_helpers_see_none_of_the_control_planes_secrets(driver, listener, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SSH_AUTH_SOCK", "/run/agent-MARKER.sock")
    server = listener()  # accepts and never answers: the clone stays in flight
    url = f"http://127.0.0.1:{server.port}/repo.git"
    failures = []
    clone = threading.Thread(target=lambda: failures.append(_create(driver, spec("ws-env", url))))
    clone.start()
    try:
        wait_until(lambda: server.connections, "git's helper to connect")
        helpers = wait_until(
            lambda: {
                pid: argv
                for pid, argv in processes_mentioning(f"127.0.0.1:{server.port}").items()
                if Path(argv[0]).name.startswith(("git", "git-remote-http"))
            },
            "git's processes",
        )
        environments = {}
        for pid, argv in helpers.items():
            raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
            environments[" ".join(argv[:2])] = dict(
                item.split("=", 1) for item in raw.split("\0") if "=" in item
            )
    finally:
        server.close()  # the helper's connection drops: git fails at once
        clone.join(timeout=DEADLINE)

    assert any("remote-http" in argv for argv in environments), environments.keys()
    for where, env in environments.items():
        for name in (*SECRETS, "SSH_AUTH_SOCK"):
            assert name not in env, f"{where} sees {name}"
        assert not any("MARKER" in value for value in env.values()), where
        assert env["GIT_CONFIG_NOSYSTEM"] == "1"
        assert env["GIT_CONFIG_GLOBAL"] == "/dev/null"
        assert env["GIT_TERMINAL_PROMPT"] == "0"
        assert env["GIT_ALLOW_PROTOCOL"] == "https:http:ssh:git"
        assert Path(env["HOME"]).parent == driver.root / "tmp"
    assert failures and isinstance(failures[0], DriverError)
    assert not list((driver.root / "tmp").iterdir())  # the private home is gone with the clone


def _create(driver, machine_spec):
    try:
        driver.create(machine_spec)
    except DriverError as exc:
        return exc
    return None


# --- Live: the worker's refusal, and the clone queue ----------------------------------------------------


def start_stack(tmp_path, workers, env=None) -> LiveStack:
    return LiveStack(
        database_url=database_url_for_processes(),
        log_dir=tmp_path,
        queue=f"clones-test-{uuid.uuid4().hex[:8]}",
        env=env,
        web_workers=1,
        workers=workers,
    )


def api(stack, token):
    return httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def status_of(client, workspace_id) -> dict:
    return client.get(f"/workspaces/{workspace_id}").json()


def test_a_clone_aimed_at_a_loopback_listener_never_reaches_it(transactional_db, tmp_path, listener):
    server = listener()
    user = UserFactory()
    token = make_token(user)
    # The web process takes the URL (as it would take a name that resolves to a public address at
    # request time); the worker, whose policy allows nothing internal, refuses it when it resolves.
    stack = start_stack(tmp_path, workers=1)
    stack.workers[0].env["EGRESS_ALLOWED_NETWORKS"] = ""
    with stack, api(stack, token) as client:
        url = f"http://127.0.0.1:{server.port}/repo.git"
        project = client.post("/projects", json={"name": "ssrf", "repo_url": url})
        assert project.status_code == 201, project.text
        created = client.post(f"/projects/{project.json()['id']}/workspaces", json=SMALL).json()

        body = wait_until(
            lambda: (b := status_of(client, created["id"]))["status"] == "error" and b,
            "the workspace to fail",
        )

    assert body["error_message"] == (
        f"Could not clone {url}: the address 127.0.0.1 is not allowed (loopback)."
    )
    assert server.connections == []


def test_a_hanging_repository_does_not_delay_another_users_workspace(
    transactional_db, tmp_path, listener, local_machines
):
    hanging = listener()  # accepts every connection, never answers
    alice, bob = UserFactory(), UserFactory()
    alice_project = ProjectFactory(owner=alice, repo_url=f"http://127.0.0.1:{hanging.port}/repo.git")
    bob_project = ProjectFactory(owner=bob, repo_url=None)
    # Two slots on each side, as the deployment had: on one shared queue, Alice's two
    # clones held both and Bob's workspace waited for the hang to end.
    stack = start_stack(
        tmp_path,
        workers=[
            {"consume": "default", "pool": "prefork", "concurrency": 2},
            {"consume": "clones", "pool": "prefork", "concurrency": 2},
        ],
    )
    with stack, api(stack, make_token(alice)) as as_alice, api(stack, make_token(bob)) as as_bob:
        stuck = [
            as_alice.post(f"/projects/{alice_project.id}/workspaces", json=SMALL).json()["id"]
            for _ in range(2)
        ]
        wait_until(lambda: len(hanging.connections) == 2, "both of Alice's clones to be hanging")

        bob_workspace = as_bob.post(f"/projects/{bob_project.id}/workspaces", json=SMALL).json()["id"]
        body = wait_until(
            lambda: (b := status_of(as_bob, bob_workspace))["status"] in ("running", "error") and b,
            "Bob's workspace to be provisioned",
        )
        assert body["status"] == "running", body
        # ... while Alice's two are still hanging on their clones.
        assert [status_of(as_alice, each)["status"] for each in stuck] == ["creating", "creating"]
        assert len(hanging.connections) == 2
        hanging.close()  # the clones fail at once, and the workers can stop
        for each in stuck:
            wait_until(lambda each=each: status_of(as_alice, each)["status"] == "error", "the clones to fail")
