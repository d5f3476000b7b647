"""The local driver: the embedded default, where each workspace machine is a process on this host.

A machine is a ``local_agent`` process with its own volume directory and its own loopback address
(on Linux the whole of 127.0.0.0/8 reaches ``lo``, so every machine can listen on the same port, as
Fly machines do on their private addresses). Layout under ``root``::

    .lock                           the allocation lock (see below)
    locks/<workspace_id>.lock       one workspace's operation lock
    machines/<workspace_id>/        machine.json (the machine's record), agent.log, agent.pid
    volumes/<workspace_id>/         the volume; the project's repository is cloned into repo/

Design:

* Detached. The agent double-forks in a new session, so a machine is re-parented to init and
  outlives the Celery worker that created it (as a cloud machine outlives the API call), and
  the launcher the driver waits for exits at once, so no zombie is left. Every later call finds
  the machine again through ``machine.json``; a pid is trusted only while ``/proc/<pid>/cmdline``
  still names the workspace, since pids are reused.
* Locked. Several worker processes may provision at once. Addresses are allocated under an
  exclusive ``flock`` on ``root/.lock`` by scanning every ``machine.json``, and the winner writes
  its record (state "creating") before it lets go, so an address is never handed out twice; it
  stays reserved, stopped or not, until ``destroy`` removes the machine directory. Operations
  on one workspace (create, start, stop, destroy) are serialized by its own lock, which the
  creator holds throughout: a record still "creating" whose lock is free was left by a creator
  that died, and reads as "failed".
* Hardware, as far as one host can: the agent sets ``RLIMIT_AS`` to ``memory_mb`` MiB and pins
  itself to ``min(cpus, available)`` CPUs, and what it applied is recorded under "limits".
  ``cpu_kind`` has no meaning here; ``volume_size_gb`` is recorded but not enforced (a directory
  has no quota); GPUs are refused by ``check_hardware``.
* One installation per root. Two checkouts on one host must never answer for each other: the
  installation id is a digest of the root's path; each root's addresses start at a /24 of
  127.1.0.0–127.254.255.255 chosen by that digest (so two checkouts do not even meet on an
  address, as a rule), and the id is in every agent's argv and ``/health`` answer, which the
  driver checks before it trusts a pid or a probe. ``manage.py machines`` lists, stops and
  destroys one root's machines by these records, never by a process-name pattern.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import ipaddress
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from config.security import egress
from projects.redaction import redact_credentials as redact
from projects.validators import repo_location
from workspaces.hardware import Hardware, Problem

from .base import Driver, DriverError, Machine, MachineSpec, MachineState

logger = logging.getLogger(__name__)

AGENT_MODULE = "workspaces.drivers.local_agent"
# Where ``python -m workspaces.drivers.local_agent`` resolves, whatever the caller's cwd.
PROJECT_ROOT = Path(__file__).resolve().parents[2]

# The /24 blocks an installation's addresses may come from: 127.1.0.0/24 to 127.254.255.0/24.
FIRST_BLOCK = 1 << 8
BLOCK_COUNT = 254 << 8
HOSTS_PER_BLOCK = 254  # .1 to .254

LAUNCH_TIMEOUT_SECONDS = 15.0  # the agent's own launcher gives up after 10
STOP_GRACE_SECONDS = 5.0
KILL_WAIT_SECONDS = 5.0
POLL_SECONDS = 0.05
PROBE_TIMEOUT_SECONDS = 0.5

_WORKSPACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_LOG_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _address(first_block: int, index: int) -> str:
    """The index-th usable address from the start of ``first_block`` (skipping .0 and .255 in the
    last octet), wrapping round within the 127.1-127.254 blocks."""
    block, host = divmod(index, HOSTS_PER_BLOCK)
    block = FIRST_BLOCK + (first_block - FIRST_BLOCK + block) % BLOCK_COUNT
    return str(ipaddress.IPv4Address((127 << 24) | (block << 8) | (host + 1)))


def installation_id(root: str | Path) -> str:
    """This installation's id: a digest of its driver root's absolute path (one root, one checkout)."""
    return hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]


class LocalDriver(Driver):
    name = "local"
    clones_on_host = True  # the repository is cloned by the worker, here: see WORKSPACE_CLONE_QUEUE

    def __init__(
        self,
        *,
        root: str | Path,
        port: int = 8080,
        start_timeout: float = 30.0,
        clone_timeout: float = 300.0,
        low_speed_seconds: int = 60,
        allowed_schemes: tuple[str, ...] | list[str] = ("https", "http", "ssh", "git"),
    ):
        self.root = Path(root)
        self.installation = installation_id(self.root)
        # The /24 this installation's first machines get; the next blocks follow if it fills up.
        self.first_block = FIRST_BLOCK + int(self.installation, 16) % BLOCK_COUNT
        self.port = int(port)
        self.start_timeout = float(start_timeout)
        self.clone_timeout = float(clone_timeout)
        self.low_speed_seconds = int(low_speed_seconds)
        # The schemes a repo_url may use (PROJECT_REPO_URL_SCHEMES); a plain path counts as "file".
        self.allowed_schemes = tuple(allowed_schemes)

    @classmethod
    def from_settings(cls, settings: Any) -> LocalDriver:
        return cls(
            root=settings.LOCAL_DRIVER_ROOT,
            port=settings.LOCAL_DRIVER_AGENT_PORT,
            start_timeout=settings.WORKSPACE_START_TIMEOUT_SECONDS,
            clone_timeout=settings.LOCAL_DRIVER_CLONE_TIMEOUT_SECONDS,
            low_speed_seconds=settings.LOCAL_DRIVER_CLONE_LOW_SPEED_SECONDS,
            allowed_schemes=settings.PROJECT_REPO_URL_SCHEMES,
        )

    # --- The Driver interface ------------------------------------------------------------------

    def check_hardware(self, hardware: Hardware) -> list[Problem]:
        if hardware.gpu_kind is not None:
            return [
                Problem(
                    "hardware.gpu_kind",
                    "gpu_unavailable",
                    "The local driver has no GPUs; gpu_kind must be null.",
                    {"choices": []},
                )
            ]
        return []

    @property
    def first_address(self) -> str:
        """The address this installation's first machine gets (on a fresh root)."""
        return _address(self.first_block, 0)

    def find(self, workspace_id: str) -> Machine | None:
        record = self._read(self._check_id(workspace_id))
        return None if record is None else self._machine(record)

    def list_machines(self) -> list[Machine]:
        machines_dir = self.root / "machines"
        if not machines_dir.is_dir():
            return []
        records = (self._read(path.name) for path in sorted(machines_dir.iterdir()))
        return [self._machine(record) for record in records if record is not None]

    def create(self, spec: MachineSpec) -> Machine:
        workspace_id = self._check_id(spec.workspace_id)
        problems = self.check_hardware(spec.hardware)
        if problems:
            raise DriverError(problems[0].message)
        with self._workspace_lock(workspace_id):
            existing = self._read(workspace_id)
            if existing is not None:
                # An earlier attempt's machine: adopt it. We hold the lock, so its creator is gone.
                return self._machine(existing, creator_running=False)
            try:
                return self._create(spec)
            except BaseException as exc:
                # Nothing may be left behind: not the process, the address, nor the volume.
                try:
                    self._remove(workspace_id)
                except Exception:
                    logger.exception("Could not clean up after a failed create of %s", workspace_id)
                if isinstance(exc, DriverError) or not isinstance(exc, Exception):
                    raise
                raise DriverError(f"Could not create the workspace machine: {redact(str(exc))}") from exc

    def wait_started(self, machine_id: str, *, timeout: float | None = None) -> Machine:
        timeout = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        # No proxy: a machine's loopback address must never be asked of an HTTP proxy.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while True:
            record = self._record_by_machine_id(machine_id)
            workspace_id = record["workspace_id"]
            state = record["state"]
            if state == "creating":
                if not self._creator_running(workspace_id):
                    raise DriverError(
                        "The workspace machine was never fully created: the attempt creating it was interrupted."
                    )
            elif state == "stopped":
                raise DriverError("The workspace machine is stopped; start it first.")
            else:
                pid = self._live_pid(record)
                health = self._probe(opener, record) if pid else None
                if health is not None:
                    return self._mark_started(record, health)
                if not self._live_pid(self._read(workspace_id) or record):
                    raise DriverError(
                        f"The workspace process exited during start-up: {self._log_tail(workspace_id)}"
                    )
            if time.monotonic() >= deadline:
                raise DriverError(
                    f"The workspace process did not answer on "
                    f"http://{record['private_ip']}:{record['port']}/health within {timeout:g} s."
                )
            time.sleep(POLL_SECONDS)

    def start(self, machine_id: str) -> Machine:
        workspace_id = self._record_by_machine_id(machine_id)["workspace_id"]
        with self._workspace_lock(workspace_id):
            record = self._record_by_machine_id(machine_id)
            if record["state"] == "creating":
                raise DriverError(
                    "The workspace machine was never fully created; destroy it and create it again."
                )
            if self._live_pid(record):
                return self._machine(record)
            if not self._volume_dir(workspace_id).is_dir():
                raise DriverError("The workspace's volume is gone; the machine cannot be started.")
            with self._allocation_lock():
                record = self._read(workspace_id)
                taken = self._addresses_in_use(exclude=workspace_id)
                # Normally still ours (a stopped machine keeps its address); re-allocate if not.
                if record["private_ip"] in taken:
                    record = self._write(workspace_id, {**record, "private_ip": self._free_address(taken)})
            # The record keeps its old state until the process exists; a failed launch changes nothing.
            pid = self._launch(record)
            return self._machine(self._update(workspace_id, state="starting", pid=pid))

    def stop(self, machine_id: str) -> Machine:
        workspace_id = self._record_by_machine_id(machine_id)["workspace_id"]
        with self._workspace_lock(workspace_id):
            record = self._record_by_machine_id(machine_id)
            if record["state"] == "creating":
                raise DriverError(
                    "The workspace machine was never fully created; destroy it and create it again."
                )
            self._kill(record)
            return self._machine(self._update(workspace_id, state="stopped", pid=None))

    def destroy(self, workspace_id: str, *, keep_machine_id: str | None = None) -> None:
        workspace_id = self._check_id(workspace_id)
        if keep_machine_id is not None:
            # One record per workspace, made under its lock: a second machine cannot exist here.
            record = self._read(workspace_id)
            if record is None or record["machine_id"] == keep_machine_id:
                return
        with self._workspace_lock(workspace_id, remove=True):
            self._remove(workspace_id)

    # --- Creating ---------------------------------------------------------------------------------

    def _create(self, spec: MachineSpec) -> Machine:
        workspace_id = spec.workspace_id
        with self._allocation_lock():
            ip = self._free_address(self._addresses_in_use())
            machine_dir = self._machine_dir(workspace_id)
            if machine_dir.exists():  # a directory without a record: a crash before it was written
                shutil.rmtree(machine_dir)
            machine_dir.mkdir(parents=True, mode=0o700)
            # Written before the lock is let go: this is what reserves the address.
            record = self._write(
                workspace_id,
                {
                    "machine_id": secrets.token_hex(7),
                    "workspace_id": workspace_id,
                    "volume_id": f"vol_{secrets.token_hex(7)}",
                    "state": "creating",
                    "pid": None,
                    "private_ip": ip,
                    "port": self.port,
                    "hardware": spec.hardware.as_dict(),
                    "limits": None,
                    "repo_url": redact(spec.repo_url) if spec.repo_url else None,
                    "branch": spec.branch,
                    "git_ref": None,
                    "env": dict(spec.env),
                    "created_at": _now(),
                },
            )

        volume = self._volume_dir(workspace_id)
        if volume.exists():  # a volume with no machine record belongs to nobody: a failed clean-up
            shutil.rmtree(volume)
        volume.mkdir(parents=True, mode=0o700)
        git_ref = self._clone(spec, volume / "repo") if spec.repo_url else None
        record = self._update(workspace_id, git_ref=git_ref)
        pid = self._launch(record)
        return self._machine(self._update(workspace_id, state="starting", pid=pid), creator_running=False)

    def _clone(self, spec: MachineSpec, target: Path) -> str | None:
        """Clone the project's repository into the volume; returns HEAD's commit (None if empty).

        The URL's host is resolved and checked against the egress policy (config/security/egress.py) here,
        and git is made to connect to the address that was checked, not to resolve the name again.
        git runs with a clean environment (``_git_environment``) and none of the host's git or ssh
        configuration. Its failures are told in a few fixed words, never in the remote's own: what
        a server answers would otherwise tell a user what listens where."""
        assert spec.repo_url
        where = redact(spec.repo_url) + (f" (branch {spec.branch})" if spec.branch else "")
        with tempfile.TemporaryDirectory(prefix="git-home-", dir=self._tmp_dir()) as home:
            url, options, ssh_host = self._pinned(spec.repo_url, where)
            env = _git_environment(home, self.allowed_schemes, ssh_host)
            command = ["git", *options, "clone", "--quiet", "--no-recurse-submodules"]
            if spec.branch:
                command += ["--branch", spec.branch]
            command += ["--", url, str(target)]  # "--": a URL can never be read as an option
            self._run_git(command, env, where)
            result = subprocess.run(  # noqa: S603 (fixed arguments, no shell)
                ["git", "-C", str(target), "rev-parse", "--verify", "--quiet", "HEAD^{commit}"],  # noqa: S607
                capture_output=True,
                text=True,
                env=env,
                timeout=30,
            )
        return (result.stdout.strip() or None) if result.returncode == 0 else None

    def _pinned(self, repo_url: str, where: str) -> tuple[str, list[str], str | None]:
        """The URL git is given, git's ``-c`` options, and the address ssh must use (or None), all
        pinned to addresses the egress policy allowed."""
        location = repo_location(repo_url)
        if location.scheme not in self.allowed_schemes:
            raise DriverError(
                f"Could not clone {where}: the {location.scheme or 'file'} scheme is not allowed."
            )
        options = [
            "-c",
            "credential.helper=",  # no credential helper: nobody's stored passwords are offered
            "-c",
            "http.followRedirects=false",  # a redirect could lead anywhere, past the check below
            "-c",
            "http.lowSpeedLimit=1024",
            "-c",
            f"http.lowSpeedTime={self.low_speed_seconds}",
            "-c",
            "core.hooksPath=/dev/null",
        ]
        if location.scheme == "file":
            return repo_url, options, None
        try:
            resolved = egress.resolve(location.host, location.port)
        except egress.EgressRefused as exc:
            raise DriverError(f"Could not clone {where}: {exc.message}.") from None
        except egress.UnresolvableHost:
            raise DriverError(f"Could not clone {where}: the host name could not be resolved.") from None
        ip = resolved.address
        ip_text = f"[{ip}]" if ip.version == 6 else str(ip)
        if location.scheme in ("http", "https"):
            parts = urlsplit(repo_url)
            userinfo = parts.netloc.rpartition("@")[0]
            if egress.literal_address(location.host) is not None:
                host = ip_text  # an address in an odd form (0x7f000001): git gets the one checked
            else:
                host = location.host  # lower-cased, as curl keys its resolve entries
                options += ["-c", f"http.curloptResolve={host}:{location.port}:{ip_text}"]
            netloc = (f"{userinfo}@" if userinfo else "") + host + (f":{parts.port}" if parts.port else "")
            return urlunsplit(parts._replace(netloc=netloc)), options, None
        if location.scheme == "git":
            parts = urlsplit(repo_url)
            return urlunsplit(parts._replace(netloc=f"{ip_text}:{location.port}")), options, None
        return repo_url, options, str(ip)  # ssh: the URL keeps its name, ssh gets -o HostName

    def _run_git(self, command: list[str], env: dict[str, str], where: str) -> None:
        try:
            # A list, no shell: the URL and branch reach git as single arguments. A session of
            # its own, so that a timeout can kill git's helpers (git-remote-https, ssh) too.
            process = subprocess.Popen(  # noqa: S603
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
                text=True,
                errors="replace",
            )
        except FileNotFoundError as exc:
            raise DriverError(f"Could not clone {where}: git is not installed on this host.") from exc
        try:
            _, stderr = process.communicate(timeout=self.clone_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise DriverError(f"Could not clone {where}: timed out after {self.clone_timeout:g} s.") from None
        if process.returncode != 0:
            logger.info("git clone of %s failed: %s", where, redact(stderr.strip()[-2000:]))
            raise DriverError(f"Could not clone {where}: {_git_reason(stderr)}.")

    def _tmp_dir(self) -> Path:
        path = self.root / "tmp"
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    # --- The agent process ------------------------------------------------------------------------

    def _launch(self, record: dict[str, Any]) -> int:
        """Start the machine's agent, detached; returns its pid once it has written its pid file."""
        workspace_id = record["workspace_id"]
        machine_dir = self._machine_dir(workspace_id)
        volume = self._volume_dir(workspace_id)
        pid_file = machine_dir / "agent.pid"
        pid_file.unlink(missing_ok=True)
        hardware = record["hardware"]
        command = [
            sys.executable,
            "-m",
            AGENT_MODULE,
            "--workspace-id",
            workspace_id,  # in argv on purpose: /proc/<pid>/cmdline is how we know it is ours
            "--bind",
            record["private_ip"],
            "--port",
            str(record["port"]),
            "--volume",
            str(volume),
            "--memory-mb",
            str(hardware["memory_mb"]),
            "--cpus",
            str(hardware["cpus"]),
            "--pid-file",
            str(pid_file),
            "--installation",
            self.installation,  # in argv too: another checkout's agent is never taken for ours
        ]
        # A machine gets a clean environment (not the control plane's, which holds its secrets),
        # then the workspace's own variables, then what the agent itself needs.
        env = {"PATH": os.environ.get("PATH", os.defpath), "LANG": "C.UTF-8", "HOME": str(volume)}
        env.update(record.get("env") or {})
        env["MALLOC_ARENA_MAX"] = "2"  # each malloc arena reserves 64 MiB of the RLIMIT_AS budget
        with open(machine_dir / "agent.log", "ab") as log:
            # Our own interpreter and module with fixed flags; the only variable parts are values
            # we generated or validated (id, address, paths, numbers). No shell.
            launcher = subprocess.Popen(  # noqa: S603
                command,
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        try:
            status = launcher.wait(timeout=LAUNCH_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()
            status = None
        pid = _read_pid(pid_file)
        if status != 0 or pid is None:
            if pid is not None:
                self._kill({**record, "pid": pid})
            raise DriverError(f"The workspace process could not be started: {self._log_tail(workspace_id)}")
        return pid

    def _live_pid(self, record: dict[str, Any]) -> int | None:
        """The machine's pid if its process is running (a zombie is not), else None."""
        workspace_id = record["workspace_id"]
        candidates = [record.get("pid"), _read_pid(self._machine_dir(workspace_id) / "agent.pid")]
        for pid in candidates:
            if pid and _is_agent(pid, workspace_id, self.installation):
                return pid
        return None

    def _kill(self, record: dict[str, Any]) -> None:
        """End the machine's process group: SIGTERM, then SIGKILL if it will not go."""
        workspace_id = record["workspace_id"]
        for sig, wait in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, KILL_WAIT_SECONDS)):
            pid = self._live_pid(record)
            if pid is None:
                return
            with contextlib.suppress(ProcessLookupError):
                # The agent leads its own group; signal the group so its children go with it.
                if os.getpgid(pid) == pid:
                    os.killpg(pid, sig)
                else:
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _is_agent(pid, workspace_id, self.installation):
                time.sleep(POLL_SECONDS)
        if self._live_pid(record):
            raise DriverError("The workspace process could not be stopped.", transient=True)

    def _probe(self, opener: urllib.request.OpenerDirector, record: dict[str, Any]) -> dict[str, Any] | None:
        """The machine's /health answer if it gives 200 and is this workspace's of this installation,
        else None."""
        url = f"http://{record['private_ip']}:{record['port']}/health"
        try:
            with opener.open(url, timeout=PROBE_TIMEOUT_SECONDS) as response:
                if response.status != 200:
                    return None
                health = json.loads(response.read())
        except (OSError, ValueError, http.client.HTTPException):
            return None
        # Someone else on this address, another checkout's machine included (the agent will then fail
        # to bind, which we will see).
        ours = (
            health.get("workspace_id") == record["workspace_id"]
            and health.get("installation") == self.installation
        )
        return health if ours else None

    def _mark_started(self, record: dict[str, Any], health: dict[str, Any]) -> Machine:
        workspace_id = record["workspace_id"]
        with self._allocation_lock():
            current = self._read(workspace_id)
            # Only if nothing else (a stop, a destroy) happened to the machine meanwhile.
            if (
                current is None
                or current["pid"] != record["pid"]
                or current["state"] not in ("starting", "started")
            ):
                raise DriverError("The workspace machine was stopped or destroyed while it was starting.")
            current.update(
                state="started",
                limits=health.get("limits"),
                git_ref=health.get("git_ref") or current.get("git_ref"),
            )
            self._write(workspace_id, current)
        return self._machine(current)

    # --- Records, addresses and locks --------------------------------------------------------------

    def _machine(self, record: dict[str, Any], *, creator_running: bool | None = None) -> Machine:
        """The record as a Machine, with its state as it is now rather than as last written."""
        state = record["state"]
        if state == "creating":
            if creator_running is None:
                creator_running = self._creator_running(record["workspace_id"])
            state = "created" if creator_running else "failed"
        elif state in ("starting", "started") and not self._live_pid(record):
            state = "failed"
        return Machine(
            machine_id=record["machine_id"],
            workspace_id=record["workspace_id"],
            state=MachineState(state),
            private_ip=record["private_ip"],
            volume_id=record["volume_id"],
            git_ref=record.get("git_ref"),
        )

    def _machine_dir(self, workspace_id: str) -> Path:
        return self.root / "machines" / workspace_id

    def _volume_dir(self, workspace_id: str) -> Path:
        return self.root / "volumes" / workspace_id

    def _read(self, workspace_id: str) -> dict[str, Any] | None:
        try:
            return json.loads((self._machine_dir(workspace_id) / "machine.json").read_text())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except ValueError:
            logger.warning("Unreadable machine record for %s", workspace_id)
            return None

    def _write(self, workspace_id: str, record: dict[str, Any]) -> dict[str, Any]:
        path = self._machine_dir(workspace_id) / "machine.json"
        tmp = path.with_name(f"machine.json.{os.getpid()}.tmp")
        # 0600: the record holds the workspace's environment variables.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(record, file, indent=2)
        os.replace(tmp, path)  # readers never see half a record
        return record

    def _update(self, workspace_id: str, **changes: Any) -> dict[str, Any]:
        with self._allocation_lock():
            record = self._read(workspace_id)
            if record is None:
                raise DriverError("The workspace machine no longer exists.")
            record.update(changes)
            return self._write(workspace_id, record)

    def _record_by_machine_id(self, machine_id: str) -> dict[str, Any]:
        machines_dir = self.root / "machines"
        if machines_dir.is_dir():
            for path in machines_dir.iterdir():
                record = self._read(path.name)
                if record is not None and record["machine_id"] == machine_id:
                    return record
        raise DriverError(f"There is no local machine {machine_id}.")

    def _addresses_in_use(self, *, exclude: str | None = None) -> set[str]:
        machines_dir = self.root / "machines"
        if not machines_dir.is_dir():
            return set()
        records = (self._read(path.name) for path in machines_dir.iterdir() if path.name != exclude)
        return {record["private_ip"] for record in records if record is not None}

    def _free_address(self, taken: set[str]) -> str:
        index = 0
        while True:
            if index >= BLOCK_COUNT * HOSTS_PER_BLOCK:
                raise DriverError(
                    "The local driver has no loopback address left for another machine.", transient=True
                )
            ip = _address(self.first_block, index)
            if ip not in taken:
                return ip
            index += 1

    def _log_tail(self, workspace_id: str) -> str:
        """The last meaningful line the machine logged, for an error message."""
        try:
            lines = (self._machine_dir(workspace_id) / "agent.log").read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        for line in reversed(lines):
            line = _LOG_STAMP.sub("", line).strip()
            if line:
                return line
        return "it wrote nothing to its log."

    @contextlib.contextmanager
    def _allocation_lock(self) -> Iterator[None]:
        """Exclusive across processes: held to allocate addresses and to write records."""
        self.root.mkdir(parents=True, exist_ok=True)
        with _flocked(self.root / ".lock"):
            yield

    @contextlib.contextmanager
    def _workspace_lock(self, workspace_id: str, *, remove: bool = False) -> Iterator[None]:
        """Exclusive per workspace: one create, start, stop or destroy at a time. Taken before the
        allocation lock, never while holding it."""
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        path = locks / f"{workspace_id}.lock"
        with _flocked(path):
            yield
            if remove:
                path.unlink(missing_ok=True)  # _flocked's waiters notice and retry on a new file

    def _creator_running(self, workspace_id: str) -> bool:
        """Whether some process holds the workspace's lock (for a "creating" record: its creator).
        A shared, non-blocking try: several readers asking at once do not mistake each other."""
        path = self.root / "locks" / f"{workspace_id}.lock"
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    @staticmethod
    def _check_id(workspace_id: str) -> str:
        # The id names directories and sits in argv: it must be one plain path component.
        if not isinstance(workspace_id, str) or not _WORKSPACE_ID.fullmatch(workspace_id):
            raise DriverError(f"{workspace_id!r} is not a usable workspace id for the local driver.")
        return workspace_id

    # --- Removing -----------------------------------------------------------------------------------

    def _remove(self, workspace_id: str) -> None:
        """Kill the machine, then remove its volume, then its record (which frees its address).
        In that order, so that an interrupted removal leaves a record to find and destroy again."""
        record = self._read(workspace_id) or {"workspace_id": workspace_id, "pid": None}
        self._kill(record)
        shutil.rmtree(self._volume_dir(workspace_id), ignore_errors=True)
        with self._allocation_lock():
            shutil.rmtree(self._machine_dir(workspace_id), ignore_errors=True)


@contextlib.contextmanager
def _flocked(path: Path) -> Iterator[None]:
    """An exclusive flock on ``path``, robust to the file being unlinked by its previous holder."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)  # we locked a file that was removed meanwhile: lock the current one instead
    try:
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _is_agent(pid: int, workspace_id: str, installation: str) -> bool:
    """Whether ``pid`` is a running agent of this workspace of this installation. A reused pid, a
    zombie (whose cmdline is empty), or another checkout's agent of the same id, is not."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if AGENT_MODULE.encode() not in argv:
        return False
    pairs = list(zip(argv, argv[1:], strict=False))
    return (b"--workspace-id", workspace_id.encode()) in pairs and (
        b"--installation",
        installation.encode(),
    ) in pairs


# git's failures, told in a few fixed words: the remote's own text (an HTTP server's banner, Redis's
# "Empty reply from server") would make error_message a port scanner. The first that matches wins.
_GIT_REASONS = [
    (re.compile(r"Remote branch .* not found", re.I), "branch not found"),
    (
        re.compile(
            r"Authentication failed|could not read (Username|Password)|terminal prompts disabled|"
            r"Permission denied|returned error: 40[13]|Host key verification failed",
            re.I,
        ),
        "authentication required",
    ),
    (re.compile(r"timed out|Operation too slow|Timeout was reached", re.I), "timed out"),
    (
        re.compile(
            r"not found|does not appear to be a git repository|not a git repository|returned error: 404|"
            r"does not exist|not valid: is this a git repository|redirect",
            re.I,
        ),
        "not a git repository, or not found",
    ),
]


def _git_reason(stderr: str) -> str:
    """Why git failed, as one of a few fixed phrases; the details go to the worker's log only."""
    for pattern, reason in _GIT_REASONS:
        if pattern.search(stderr):
            return reason
    return "could not connect, or the server did not answer as a git server"


def _git_environment(home: str, allowed_schemes: tuple[str, ...], ssh_host: str | None) -> dict[str, str]:
    """What git (and ssh) may see: nothing of the control plane's environment, which holds its
    secrets, and none of the host's git or ssh configuration, keys, agent or credential helpers."""
    ssh = [
        "ssh",
        *("-F", "/dev/null"),  # no ~/.ssh/config, no /etc/ssh/ssh_config
        *("-o", "BatchMode=yes"),
        *("-o", "IdentitiesOnly=yes", "-o", "IdentityFile=none", "-o", "IdentityAgent=none"),
        *("-o", "ForwardAgent=no", "-o", "ProxyCommand=none"),
        # A known-hosts file of this clone's own, empty: the first key a host shows is taken. No
        # identity is ever offered, so a stranger posing as the host learns nothing of ours.
        *("-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={home}/known_hosts"),
        *(("-o", f"HostName={ssh_host}") if ssh_host else ()),
    ]
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": home,
        "LANG": "C",
        "LC_ALL": "C",
        "GIT_TERMINAL_PROMPT": "0",  # fail, rather than wait for a password nobody will type
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ALLOW_PROTOCOL": ":".join(allowed_schemes),
        "GIT_SSH_COMMAND": shlex.join(ssh),
        "GIT_SSH_VARIANT": "ssh",
    }
