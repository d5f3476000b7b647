"""The local driver against real processes, real git and real loopback addresses.

No database: every test builds its own driver on a ``tmp_path`` root and a port of its own, and the
``driver`` fixture destroys whatever is left under that root (and fails the test if an agent
process of that root survives it).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from workspaces.drivers.base import DriverError, MachineSpec, MachineState
from workspaces.drivers.local import PROJECT_ROOT, LocalDriver
from workspaces.drivers.local_agent import volume_fingerprint
from workspaces.hardware import Hardware

# Ports of this test run's own (LOCAL_DRIVER_AGENT_PORT is set per run): concurrent runs on one host
# would otherwise meet on an address.
PORT = int(os.environ.get("LOCAL_DRIVER_AGENT_PORT", "18080")) + 2
ALL_SCHEMES = ("https", "http", "ssh", "git", "file")
DEADLINE = 30.0  # generous: only ever an upper bound on polling, never an assertion about speed
HARDWARE = Hardware(cpu_kind="shared", cpus=1, memory_mb=512, volume_size_gb=1)
GIT = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]


# --- Helpers and fixtures ------------------------------------------------------------------------


def agent_pids(root: Path) -> list[int]:
    """Every running agent process whose arguments mention ``root`` (its volume and pid file do)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"workspaces.drivers.local_agent" in argv and any(str(root).encode() in arg for arg in argv):
            pids.append(int(entry.name))
    return pids


def is_running(pid: int) -> bool:
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())  # a zombie's is empty
    except OSError:
        return False


def wait_until(predicate, what: str):
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def health(ip: str, port: int = PORT) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{ip}:{port}/health", timeout=5) as response:
        assert response.status == 200
        return json.loads(response.read())


def record(driver: LocalDriver, workspace_id: str) -> dict:
    return json.loads((driver.root / "machines" / workspace_id / "machine.json").read_text())


def spec(workspace_id: str, **kwargs) -> MachineSpec:
    return MachineSpec(workspace_id=workspace_id, hardware=kwargs.pop("hardware", HARDWARE), **kwargs)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "local-machines"


@pytest.fixture
def driver(root: Path):
    # Plain paths and file:// are what these tests clone: the scheme a deployment may allow.
    driver = LocalDriver(
        root=root, port=PORT, start_timeout=DEADLINE, clone_timeout=60, allowed_schemes=ALL_SCHEMES
    )
    yield driver
    for machine in driver.list_machines():
        driver.destroy(machine.workspace_id)
    leftovers = agent_pids(root)
    for pid in leftovers:
        os.killpg(pid, signal.SIGKILL)
    assert not leftovers, f"agent processes survived the test: {leftovers}"


@pytest.fixture
def repo(tmp_path: Path) -> dict:
    """A repository with a commit on main and another on a second branch, "feature"."""
    path = tmp_path / "origin"
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "README.md").write_text("hello\n")
    subprocess.run([*GIT, "-C", str(path), "add", "README.md"], check=True)
    subprocess.run([*GIT, "-C", str(path), "commit", "-q", "-m", "first"], check=True)
    main = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout
    subprocess.run(["git", "-C", str(path), "checkout", "-q", "-b", "feature"], check=True)
    (path / "FEATURE.md").write_text("feature\n")
    subprocess.run([*GIT, "-C", str(path), "add", "FEATURE.md"], check=True)
    subprocess.run([*GIT, "-C", str(path), "commit", "-q", "-m", "feature"], check=True)
    feature = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout
    subprocess.run(["git", "-C", str(path), "checkout", "-q", "main"], check=True)
    return {"path": path, "main": main.strip(), "feature": feature.strip()}


def assert_nothing_left(driver: LocalDriver, workspace_id: str) -> None:
    assert driver.find(workspace_id) is None
    assert not (driver.root / "machines" / workspace_id).exists()
    assert not (driver.root / "volumes" / workspace_id).exists()
    assert agent_pids(driver.root) == []


# --- Create and start --------------------------------------------------------------------------


def test_create_and_wait_started_runs_a_machine_with_the_cloned_repository(driver, repo):
    created = driver.create(spec("ws-one", repo_url=str(repo["path"])))

    assert created.state == "starting"
    assert re.fullmatch(r"[0-9a-f]{14}", created.machine_id)
    assert re.fullmatch(r"vol_[0-9a-f]{14}", created.volume_id)
    assert created.git_ref == repo["main"]

    started = driver.wait_started(created.machine_id, timeout=DEADLINE)

    assert started.state == "started"
    assert started.machine_id == created.machine_id
    assert started.private_ip == driver.first_address
    assert started.git_ref == repo["main"]
    answer = health(started.private_ip)
    assert answer["status"] == "ok"
    assert answer["workspace_id"] == "ws-one"
    assert answer["git_ref"] == repo["main"]
    assert (driver.root / "volumes" / "ws-one" / "repo" / "README.md").read_text() == "hello\n"
    saved = record(driver, "ws-one")
    assert saved["state"] == "started"
    assert saved["private_ip"] == driver.first_address
    assert saved["port"] == PORT
    assert saved["hardware"] == HARDWARE.as_dict()
    assert is_running(saved["pid"])
    assert driver.find("ws-one") == started


def test_a_workspace_without_a_repository_has_no_git_ref(driver):
    machine = driver.wait_started(driver.create(spec("ws-bare")).machine_id, timeout=DEADLINE)

    assert machine.state == "started"
    assert machine.git_ref is None
    assert health(machine.private_ip)["git_ref"] is None


def test_an_empty_repository_clones_with_no_git_ref(driver, tmp_path):
    empty = tmp_path / "empty"
    subprocess.run(["git", "init", "-q", "-b", "main", str(empty)], check=True)

    machine = driver.wait_started(
        driver.create(spec("ws-empty", repo_url=str(empty))).machine_id, timeout=DEADLINE
    )

    assert machine.git_ref is None


def test_two_workspaces_get_different_loopback_addresses(driver):
    first = driver.wait_started(driver.create(spec("ws-a")).machine_id, timeout=DEADLINE)
    second = driver.wait_started(driver.create(spec("ws-b")).machine_id, timeout=DEADLINE)

    assert first.private_ip != second.private_ip
    for machine in (first, second):
        assert machine.private_ip.rsplit(".", 1)[0] == driver.first_address.rsplit(".", 1)[0]
        assert health(machine.private_ip)["workspace_id"] == machine.workspace_id


def test_a_branch_is_cloned_when_given(driver, repo):
    url = f"file://{repo['path']}"
    machine = driver.wait_started(
        driver.create(spec("ws-branch", repo_url=url, branch="feature")).machine_id, timeout=DEADLINE
    )

    assert machine.git_ref == repo["feature"]
    assert health(machine.private_ip)["git_ref"] == repo["feature"]
    assert (driver.root / "volumes" / "ws-branch" / "repo" / "FEATURE.md").exists()


# --- Failures leave nothing behind ---------------------------------------------------------------


def test_a_repository_that_does_not_exist_fails_with_a_readable_message(driver, tmp_path):
    missing = tmp_path / "no-such-repo"

    with pytest.raises(DriverError) as failure:
        driver.create(spec("ws-bad", repo_url=str(missing)))

    assert not failure.value.transient
    # In fixed words, not git's (whose text about a remote would tell what listens there).
    assert failure.value.message == f"Could not clone {missing}: not a git repository, or not found."
    assert_nothing_left(driver, "ws-bad")


def test_a_branch_that_does_not_exist_fails_with_a_readable_message(driver, repo):
    with pytest.raises(DriverError) as failure:
        driver.create(spec("ws-bad-branch", repo_url=str(repo["path"]), branch="nope"))

    assert failure.value.message == f"Could not clone {repo['path']} (branch nope): branch not found."
    assert_nothing_left(driver, "ws-bad-branch")


def test_credentials_never_appear_in_the_message(driver, monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    # Port 9 on 127.0.0.1: nothing listens, so the connection is refused at once.
    url = "http://alice:s3cret@127.0.0.1:9/repo.git"

    with pytest.raises(DriverError) as failure:
        driver.create(spec("ws-secret", repo_url=url))

    assert "s3cret" not in failure.value.message
    # Masked as everywhere a repo_url is shown (projects.redaction): the user name says which account.
    assert failure.value.message.startswith("Could not clone http://alice:***@127.0.0.1:9/repo.git: ")
    assert_nothing_left(driver, "ws-secret")


def test_a_clone_that_hangs_times_out(root):
    driver = LocalDriver(root=root, port=PORT, clone_timeout=1)
    # A server that accepts the connection and never answers: git waits until we give up.
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with pytest.raises(DriverError) as failure:
            driver.create(spec("ws-slow", repo_url=f"git://127.0.0.1:{port}/repo.git"))

    assert failure.value.message == f"Could not clone git://127.0.0.1:{port}/repo.git: timed out after 1 s."
    assert_nothing_left(driver, "ws-slow")


def test_an_agent_that_cannot_bind_fails_wait_started_with_its_log(driver):
    # The first machine of a fresh root gets its installation's first address: take its port first.
    with socket.socket() as squatter:
        # SO_REUSEADDR: earlier tests' connections may linger in TIME_WAIT. Two listeners still clash.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((driver.first_address, PORT))
        squatter.listen()
        machine = driver.create(spec("ws-nobind"))
        assert machine.private_ip == driver.first_address

        with pytest.raises(DriverError) as failure:
            driver.wait_started(machine.machine_id, timeout=DEADLINE)

    assert not failure.value.transient
    assert failure.value.message.startswith("The workspace process exited during start-up: ")
    assert f"cannot listen on {driver.first_address}:{PORT}: Address already in use" in failure.value.message
    assert driver.find("ws-nobind").state == "failed"

    driver.destroy("ws-nobind")

    assert_nothing_left(driver, "ws-nobind")


def test_wait_started_gives_up_after_its_timeout(driver):
    machine = driver.create(spec("ws-patient"))
    # Pause the agent (and its group) so that it neither answers nor dies.
    pid = record(driver, "ws-patient")["pid"]
    os.killpg(pid, signal.SIGSTOP)
    try:
        with pytest.raises(DriverError) as failure:
            driver.wait_started(machine.machine_id, timeout=0.5)
    finally:
        os.killpg(pid, signal.SIGCONT)

    assert (
        f"did not answer on http://{driver.first_address}:{PORT}/health within 0.5 s" in failure.value.message
    )


def test_unknown_machines_and_unusable_ids_are_driver_errors(driver):
    with pytest.raises(DriverError):
        driver.wait_started("0123456789abcd", timeout=1)
    with pytest.raises(DriverError):
        driver.stop("0123456789abcd")
    with pytest.raises(DriverError):
        driver.find("../escape")


# --- Stop, start, destroy, find ----------------------------------------------------------------------


def test_stop_keeps_the_volume_and_start_brings_the_machine_back_on_its_address(driver, repo):
    machine = driver.wait_started(
        driver.create(spec("ws-cycle", repo_url=str(repo["path"]))).machine_id, timeout=DEADLINE
    )
    first_pid = record(driver, "ws-cycle")["pid"]
    work = driver.root / "volumes" / "ws-cycle" / "repo" / "work.txt"
    work.write_text("unsaved work\n")

    stopped = driver.stop(machine.machine_id)

    assert stopped.state == "stopped"
    assert not is_running(first_pid)
    assert driver.find("ws-cycle").state == "stopped"
    assert work.read_text() == "unsaved work\n"
    assert driver.stop(machine.machine_id).state == "stopped"  # again: nothing to do
    assert "SIGTERM received" in (driver.root / "machines" / "ws-cycle" / "agent.log").read_text()

    restarted = driver.start(machine.machine_id)
    assert restarted.state == "starting"
    started = driver.wait_started(machine.machine_id, timeout=DEADLINE)

    assert started.state == "started"
    assert started.private_ip == machine.private_ip
    assert started.volume_id == machine.volume_id
    assert health(started.private_ip)["git_ref"] == repo["main"]
    second_pid = record(driver, "ws-cycle")["pid"]
    assert second_pid != first_pid and is_running(second_pid)
    assert work.read_text() == "unsaved work\n"
    assert driver.start(machine.machine_id).state == "started"  # already running: unchanged


def test_destroy_removes_everything_and_can_be_repeated(driver, repo):
    machine = driver.wait_started(
        driver.create(spec("ws-gone", repo_url=str(repo["path"]))).machine_id, timeout=DEADLINE
    )
    pid = record(driver, "ws-gone")["pid"]

    driver.destroy("ws-gone")

    assert not is_running(pid)
    assert_nothing_left(driver, "ws-gone")
    assert driver.list_machines() == []
    driver.destroy("ws-gone")
    driver.destroy("ws-never-existed")
    with pytest.raises(DriverError):
        driver.wait_started(machine.machine_id, timeout=1)
    # Its address is free again.
    assert driver.create(spec("ws-next")).private_ip == machine.private_ip


def test_find_and_create_adopt_an_existing_machine(driver, root):
    machine = driver.wait_started(driver.create(spec("ws-adopt")).machine_id, timeout=DEADLINE)
    pid = record(driver, "ws-adopt")["pid"]
    another = LocalDriver(root=root, port=PORT)  # e.g. another worker process

    found = another.find("ws-adopt")
    adopted = another.create(spec("ws-adopt"))

    assert found == machine
    assert adopted == machine
    assert agent_pids(root) == [pid]
    assert another.list_machines() == [machine]
    assert another.find("ws-other") is None


def test_a_machine_whose_process_died_reads_as_failed(driver):
    machine = driver.wait_started(driver.create(spec("ws-crash")).machine_id, timeout=DEADLINE)
    pid = record(driver, "ws-crash")["pid"]

    os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: not is_running(pid), "the agent to die")

    assert driver.find("ws-crash").state is MachineState.FAILED
    assert driver.start(machine.machine_id).state == "starting"  # a crashed machine can be booted again
    assert driver.wait_started(machine.machine_id, timeout=DEADLINE).state == "started"


def test_the_machine_outlives_the_process_that_created_it(driver, root):
    code = (
        "import sys\n"
        "from workspaces.drivers.base import MachineSpec\n"
        "from workspaces.drivers.local import LocalDriver\n"
        "from workspaces.hardware import Hardware\n"
        f"driver = LocalDriver(root={str(root)!r}, port={PORT})\n"
        "machine = driver.create(MachineSpec('ws-orphan', Hardware('shared', 1, 512, 1)))\n"
        "print(machine.machine_id)\n"
    )
    creator = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = creator.communicate(timeout=DEADLINE)
    assert creator.returncode == 0, stderr

    machine = driver.wait_started(stdout.strip(), timeout=DEADLINE)

    assert machine.state == "started"
    pid = record(driver, "ws-orphan")["pid"]
    assert is_running(pid)
    assert health(machine.private_ip)["workspace_id"] == "ws-orphan"
    status = Path(f"/proc/{pid}/status").read_text()
    parent = int(re.search(r"^PPid:\s+(\d+)", status, re.M).group(1))
    assert parent not in (creator.pid, os.getpid())  # re-parented: nothing of ours is waiting on it


# --- Hardware -----------------------------------------------------------------------------------------


def test_memory_and_cpu_limits_are_applied_and_recorded(driver):
    hardware = Hardware(cpu_kind="shared", cpus=1, memory_mb=768, volume_size_gb=1)
    machine = driver.wait_started(
        driver.create(spec("ws-limits", hardware=hardware)).machine_id, timeout=DEADLINE
    )
    pid = record(driver, "ws-limits")["pid"]

    limits = Path(f"/proc/{pid}/limits").read_text()
    address_space = re.search(r"^Max address space\s+(\d+)\s+(\d+)", limits, re.M)
    assert address_space.groups() == (str(768 * 1024 * 1024),) * 2
    status = Path(f"/proc/{pid}/status").read_text()
    allowed = re.search(r"^Cpus_allowed_list:\s+(\S+)", status, re.M).group(1)
    assert re.fullmatch(r"\d+", allowed)  # exactly one CPU
    saved = record(driver, "ws-limits")["limits"]
    assert saved["memory_mb"] == 768
    assert saved["cpus"] == 1
    assert saved["cpu_list"] == [int(allowed)]
    assert health(machine.private_ip)["limits"] == saved


def test_more_cpus_than_the_host_has_are_capped_at_what_it_has(driver):
    hardware = Hardware(cpu_kind="performance", cpus=16, memory_mb=2048, volume_size_gb=1)
    driver.wait_started(driver.create(spec("ws-big", hardware=hardware)).machine_id, timeout=DEADLINE)

    assert record(driver, "ws-big")["limits"]["cpus"] == min(16, len(os.sched_getaffinity(0)))


def test_the_local_driver_offers_no_gpus(driver):
    problems = driver.check_hardware(Hardware("performance", 8, 16384, 10, gpu_kind="a100-40gb"))

    assert [problem.as_dict() for problem in problems] == [
        {
            "field": "hardware.gpu_kind",
            "code": "gpu_unavailable",
            "message": "The local driver has no GPUs; gpu_kind must be null.",
            "allowed": {"choices": []},
        }
    ]
    assert driver.check_hardware(HARDWARE) == []
    with pytest.raises(DriverError):
        driver.create(spec("ws-gpu", hardware=Hardware("performance", 8, 16384, 10, gpu_kind="a100-40gb")))
    assert_nothing_left(driver, "ws-gpu")


# --- Concurrency ------------------------------------------------------------------------------------


def test_concurrent_creates_from_threads_never_share_an_address(driver):
    machines, errors = [], []

    def create(index: int) -> None:
        try:
            machines.append(driver.create(spec(f"ws-thread-{index}")))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    addresses = [machine.private_ip for machine in machines]
    assert len(set(addresses)) == 6
    for machine in machines:
        started = driver.wait_started(machine.machine_id, timeout=DEADLINE)
        assert health(started.private_ip)["workspace_id"] == machine.workspace_id


def test_concurrent_creates_from_processes_never_share_an_address(driver, root):
    code = (
        "import sys\n"
        "from workspaces.drivers.base import MachineSpec\n"
        "from workspaces.drivers.local import LocalDriver\n"
        "from workspaces.hardware import Hardware\n"
        f"driver = LocalDriver(root={str(root)!r}, port={PORT})\n"
        "for name in sys.argv[1:]:\n"
        "    driver.create(MachineSpec(name, Hardware('shared', 1, 512, 1)))\n"
    )
    creators = [
        subprocess.Popen([sys.executable, "-c", code, f"ws-proc-{n}-a", f"ws-proc-{n}-b"], cwd=PROJECT_ROOT)
        for n in range(3)
    ]
    assert [creator.wait(timeout=DEADLINE * 2) for creator in creators] == [0, 0, 0]

    machines = driver.list_machines()
    assert len(machines) == 6
    assert len({machine.private_ip for machine in machines}) == 6
    for machine in machines:
        started = driver.wait_started(machine.machine_id, timeout=DEADLINE)
        assert health(started.private_ip)["workspace_id"] == machine.workspace_id


def test_from_settings_reads_the_local_driver_settings(tmp_path):
    class Settings:
        LOCAL_DRIVER_ROOT = tmp_path / "machines"
        LOCAL_DRIVER_AGENT_PORT = 18099
        WORKSPACE_START_TIMEOUT_SECONDS = 12.0
        LOCAL_DRIVER_CLONE_TIMEOUT_SECONDS = 34.0
        LOCAL_DRIVER_CLONE_LOW_SPEED_SECONDS = 56
        PROJECT_REPO_URL_SCHEMES = ["https", "file"]

    driver = LocalDriver.from_settings(Settings)

    assert (
        driver.root,
        driver.port,
        driver.start_timeout,
        driver.clone_timeout,
        driver.low_speed_seconds,
        driver.allowed_schemes,
    ) == (tmp_path / "machines", 18099, 12.0, 34.0, 56, ("https", "file"))
    assert driver.name == "local"


# --- Heartbeats (idle auto-stop) ---------------------------------------------------------------------

# A port of this test run's own (LOCAL_DRIVER_AGENT_PORT is set per run), next to the one the
# database-backed tests use, so that concurrent runs on one host do not meet.
HEARTBEAT_AGENT_PORT = int(os.environ.get("LOCAL_DRIVER_AGENT_PORT", "18080")) + 1
BEAT_INTERVAL = 0.2
QUIET = 1.0  # five intervals with nothing to report


@pytest.fixture
def heartbeat_driver(root: Path):
    driver = LocalDriver(
        root=root,
        port=HEARTBEAT_AGENT_PORT,
        start_timeout=DEADLINE,
        clone_timeout=60,
        allowed_schemes=ALL_SCHEMES,
    )
    yield driver
    for machine in driver.list_machines():
        driver.destroy(machine.workspace_id)
    leftovers = agent_pids(root)
    for pid in leftovers:
        os.killpg(pid, signal.SIGKILL)
    assert not leftovers, f"agent processes survived the test: {leftovers}"


@pytest.fixture
def control_plane():
    """A stand-in for the API on 127.0.0.1 that records every heartbeat POSTed to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(
                {
                    "path": self.path,
                    "authorization": self.headers.get("Authorization"),
                    "content_type": self.headers.get("Content-Type"),
                    "body": body,
                }
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.received = received
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def heartbeat_env(control_plane, workspace_id: str) -> dict[str, str]:
    return {
        "WORKSPACE_ID": workspace_id,
        "WORKSPACE_HEARTBEAT_URL": f"{control_plane.url}/workspaces/{workspace_id}/heartbeat",
        "WORKSPACE_AGENT_TOKEN": f"wsa_token-of-{workspace_id}",
        "WORKSPACE_HEARTBEAT_INTERVAL_SECONDS": str(BEAT_INTERVAL),
    }


def use_preview(ip: str) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{ip}:{HEARTBEAT_AGENT_PORT}/preview/", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:  # the agent serves no preview yet: a 404 is still use
        return error.code


def test_the_agent_sends_heartbeats_while_it_is_used_and_only_then(heartbeat_driver, control_plane, repo):
    driver = heartbeat_driver
    env = heartbeat_env(control_plane, "ws-beat")
    machine = driver.wait_started(
        driver.create(spec("ws-beat", repo_url=str(repo["path"]), env=env)).machine_id, timeout=DEADLINE
    )
    volume = driver.root / "volumes" / "ws-beat"
    received = control_plane.received

    # Running but unused: neither time passing nor health checks are activity.
    for _ in range(3):
        assert health(machine.private_ip, HEARTBEAT_AGENT_PORT)["workspace_id"] == "ws-beat"
    time.sleep(QUIET)
    assert received == []

    # Someone opens the preview: one heartbeat, with the workspace's agent token.
    assert use_preview(machine.private_ip) == 404
    wait_until(lambda: received, "a heartbeat after a request")
    assert received[0] == {
        "path": "/workspaces/ws-beat/heartbeat",
        "authorization": "Bearer wsa_token-of-ws-beat",
        "content_type": "application/json",
        "body": b"{}",
    }
    time.sleep(QUIET)
    assert len(received) == 1  # one burst of use, one heartbeat

    # Someone edits a file of the repository: a heartbeat.
    (volume / "repo" / "README.md").write_text("edited\n")
    wait_until(lambda: len(received) == 2, "a heartbeat after a file changed")

    # git's own bookkeeping is not use.
    (volume / "repo" / ".git" / "description").write_text("touched by an editor's git integration\n")
    (volume / "repo" / ".git" / "index.lock").write_text("")
    time.sleep(QUIET)
    assert len(received) == 2

    # Constant use: at most one heartbeat per interval.
    started = time.monotonic()
    while time.monotonic() - started < QUIET:
        use_preview(machine.private_ip)
        (volume / "scratch.txt").write_text(str(time.monotonic()))
    elapsed = time.monotonic() - started
    wait_until(lambda: len(received) >= 3, "heartbeats during constant use")
    time.sleep(BEAT_INTERVAL * 2)
    assert 3 <= len(received) <= 2 + elapsed / BEAT_INTERVAL + 2

    log = (driver.root / "machines" / "ws-beat" / "agent.log").read_text()
    assert f"heartbeats to {env['WORKSPACE_HEARTBEAT_URL']} at most every 0.2 s" in log
    assert env["WORKSPACE_AGENT_TOKEN"] not in log


def test_the_agent_environment_survives_a_stop_and_start(heartbeat_driver, control_plane):
    driver = heartbeat_driver
    machine = driver.create(spec("ws-again", env=heartbeat_env(control_plane, "ws-again")))
    driver.wait_started(machine.machine_id, timeout=DEADLINE)
    driver.stop(machine.machine_id)

    driver.start(machine.machine_id)
    started = driver.wait_started(machine.machine_id, timeout=DEADLINE)
    use_preview(started.private_ip)

    wait_until(lambda: control_plane.received, "a heartbeat from the restarted machine")
    assert control_plane.received[0]["authorization"] == "Bearer wsa_token-of-ws-again"


def test_without_a_heartbeat_url_the_agent_sends_nothing(heartbeat_driver, control_plane):
    driver = heartbeat_driver
    env = heartbeat_env(control_plane, "ws-quiet")
    del env["WORKSPACE_HEARTBEAT_URL"]
    machine = driver.wait_started(driver.create(spec("ws-quiet", env=env)).machine_id, timeout=DEADLINE)

    use_preview(machine.private_ip)
    time.sleep(QUIET)

    assert control_plane.received == []
    assert "heartbeats off" in (driver.root / "machines" / "ws-quiet" / "agent.log").read_text()


def test_the_volume_fingerprint_sees_changes_skips_git_and_is_capped(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("print(1)\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    before = volume_fingerprint(tmp_path)
    assert before[0] == 2  # src and src/main.py; .git is not looked at

    (tmp_path / ".git" / "index").write_text("refreshed")
    assert volume_fingerprint(tmp_path) == before

    main = tmp_path / "src" / "main.py"
    os.utime(main, ns=(main.stat().st_atime_ns, main.stat().st_mtime_ns + 1))
    changed = volume_fingerprint(tmp_path)
    assert changed != before and changed[0] == 2

    main.unlink()
    assert volume_fingerprint(tmp_path)[0] == 1

    for n in range(50):
        (tmp_path / f"file-{n}").write_text("")
    assert volume_fingerprint(tmp_path, max_entries=10)[0] == 10


def test_an_unreachable_control_plane_is_logged_and_the_machine_carries_on(heartbeat_driver):
    driver = heartbeat_driver
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = {
        "WORKSPACE_HEARTBEAT_URL": f"http://127.0.0.1:{port}/workspaces/ws-lonely/heartbeat",
        "WORKSPACE_AGENT_TOKEN": "wsa_lonely",
        "WORKSPACE_HEARTBEAT_INTERVAL_SECONDS": str(BEAT_INTERVAL),
    }
    machine = driver.wait_started(driver.create(spec("ws-lonely", env=env)).machine_id, timeout=DEADLINE)
    log = driver.root / "machines" / "ws-lonely" / "agent.log"

    use_preview(machine.private_ip)

    wait_until(lambda: "could not be reached" in log.read_text(), "the failed heartbeat in the log")
    assert health(machine.private_ip, HEARTBEAT_AGENT_PORT)["status"] == "ok"
