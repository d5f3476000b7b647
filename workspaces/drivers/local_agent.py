"""The process that *is* a local workspace machine (see ``workspaces.drivers.local``).

Run as::

    python -m workspaces.drivers.local_agent --workspace-id ID --bind IP --port PORT \\
        --volume DIR --memory-mb N --cpus N --pid-file FILE

Standard library only: it must start fast, stay small under its own memory limit and never need
Django's settings. (``-m`` still runs the ``workspaces.drivers`` package's ``__init__``, which
imports a few Django modules without configuring them; nothing here uses them.)

The process that the driver starts is only a launcher. It double-forks so that the machine is
re-parented to init: it outlives the Celery worker that created it, and the launcher, which the
driver waits for, exits as soon as the machine has written its pid file, so no zombie is left
behind. The machine then makes itself leader of its own process group (``stop`` and ``destroy``
signal the whole group), applies its hardware limits, and serves ``GET /health`` on its own
loopback address. Its argv carries the workspace id: the driver reads ``/proc/<pid>/cmdline`` to
tell this machine from an unrelated process that reused its pid.

Heartbeats (idle auto-stop). When its environment has ``WORKSPACE_HEARTBEAT_URL`` and
``WORKSPACE_AGENT_TOKEN`` (the control plane gives both to every machine), a background thread
POSTs ``{}`` to that URL with ``Authorization: Bearer <token>`` at most once every
``WORKSPACE_HEARTBEAT_INTERVAL_SECONDS`` (default 30), and only when the workspace had activity
since the last heartbeat. What counts as activity:

* any HTTP request to the agent other than ``GET``/``HEAD /health`` (someone using the workspace's
  preview; the driver's own health checks are not use);
* any file or directory in the volume that appeared, disappeared or whose mtime changed since the
  previous check (someone working in it). The walk skips ``.git`` and everything in it (editors'
  git integrations refresh its index on their own; real work shows in the working tree anyway),
  and stops after ``SCAN_MAX_ENTRIES`` entries, so a huge volume costs a bounded amount per check;
  changes past that cap go unseen. What the volume held when the agent started is the baseline:
  starting is not activity by itself (the control plane already counts the start request).

A heartbeat that fails (network, 5xx) is logged and retried at the next check; one the control plane
refuses (4xx) is logged and dropped. Nothing else here depends on heartbeats working.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import resource
import select
import signal
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# How long the launcher waits for the daemon to report its pid; the driver waits a little longer.
LAUNCH_TIMEOUT_SECONDS = 10.0
# Each request thread's stack counts against RLIMIT_AS: the 8 MiB default would eat a small limit.
THREAD_STACK_BYTES = 1024 * 1024

# Heartbeats: see the module docstring.
HEARTBEAT_INTERVAL_SECONDS = 30.0
HEARTBEAT_TIMEOUT_SECONDS = 5.0
SCAN_MAX_ENTRIES = 10_000
SCAN_SKIP_NAMES = frozenset({".git"})

_REF = re.compile(r"refs/[A-Za-z0-9._/-]+")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def log(message: str) -> None:
    """One line on stdout, which the driver points at ``agent.log``; flushed, since we may die next."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sys.stdout.write(f"{stamp} {message}\n")
    sys.stdout.flush()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="local_agent", description=__doc__.splitlines()[0])
    parser.add_argument("--workspace-id", required=True)
    parser.add_argument("--bind", required=True, help="the machine's own loopback address")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--volume", required=True, type=Path)
    parser.add_argument("--memory-mb", required=True, type=int)
    parser.add_argument("--cpus", required=True, type=int)
    parser.add_argument("--pid-file", required=True, type=Path)
    parser.add_argument(
        "--installation", default="", help="the control plane's installation id, told in /health"
    )
    return parser.parse_args(argv)


def read_git_ref(repo: Path) -> str | None:
    """The commit the repository's HEAD points at, read from ``.git`` directly (no subprocess, so that
    it works under the memory limit and costs nothing per health check); None when there is none."""
    git_dir = repo / ".git"
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[len("ref: ") :].strip()
            # The repository is the workspace owner's: never follow a ref out of .git.
            if not _REF.fullmatch(ref) or ".." in ref:
                return None
            loose = git_dir / ref
            if loose.is_file():
                head = loose.read_text().strip()
            else:
                head = ""
                packed = git_dir / "packed-refs"
                if packed.is_file():
                    for line in packed.read_text().splitlines():
                        sha, _, name = line.partition(" ")
                        if name.strip() == ref:
                            head = sha
                            break
        return head if _SHA.fullmatch(head) else None
    except OSError:
        return None


def apply_limits(memory_mb: int, cpus: int) -> dict[str, Any]:
    """Hold this process (and everything it starts) to its hardware, as far as the host allows.
    Returns what was actually applied, which ``/health`` reports and the driver records."""
    wanted = memory_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    # An unprivileged process cannot raise its hard limit: take the lower of the two.
    address_space = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    available = sorted(os.sched_getaffinity(0))
    chosen = available[: max(1, min(cpus, len(available)))]
    os.sched_setaffinity(0, chosen)  # before any thread exists, so that every thread inherits it
    return {
        "memory_mb": address_space // (1024 * 1024),
        "address_space_bytes": address_space,
        "cpus": len(chosen),
        "cpu_list": chosen,
    }


def volume_fingerprint(volume: Path, *, max_entries: int = SCAN_MAX_ENTRIES) -> tuple[int, int]:
    """A summary of the volume's entries and their mtimes: it changes when an entry (file, directory
    or link, not followed) appears, goes or gets a new mtime. At most ``max_entries`` entries are
    looked at; ``.git`` is skipped, with all it holds. Order-independent, and O(1) memory whatever the
    volume holds (a per-entry hash, summed)."""
    count, total = 0, 0
    pending = [volume]
    while pending and count < max_entries:
        directory = pending.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if count >= max_entries:
                        break
                    if entry.name in SCAN_SKIP_NAMES:
                        continue  # not even its own mtime, which every git command moves
                    try:
                        mtime = entry.stat(follow_symlinks=False).st_mtime_ns
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        continue  # gone between listing and stat: the directory's mtime shows it
                    count += 1
                    total = (total + hash((entry.path, mtime))) % (1 << 64)
                    if is_dir:
                        pending.append(Path(entry.path))
        except OSError:
            continue  # unreadable or removed meanwhile
    return count, total


class Heartbeat:
    """Reports activity to the control plane, at most once per ``interval`` (see the docstring)."""

    def __init__(self, *, url: str, token: str, interval: float, volume: Path):
        self.url = url
        self.token = token
        self.interval = interval
        self.volume = volume
        self._requests = threading.Event()  # set by request threads, cleared by the heartbeat thread
        self._stop = threading.Event()
        self._fingerprint = volume_fingerprint(volume)  # the baseline: starting is not activity
        # No proxy for a loopback control plane; a remote one goes through whatever the env says.
        host = urlsplit(url).hostname or ""
        handlers = [urllib.request.ProxyHandler({})] if host.startswith("127.") or host == "localhost" else []
        self._opener = urllib.request.build_opener(*handlers)

    def note_request(self) -> None:
        self._requests.set()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        pending = False
        while not self._stop.wait(self.interval):
            try:
                pending = self._active() or pending
                if pending:
                    pending = not self.send()
            except Exception:  # never let the thread die: a machine without heartbeats gets stopped
                log("heartbeat: unexpected error: " + traceback.format_exc().rstrip())

    def _active(self) -> bool:
        requested = self._requests.is_set()
        self._requests.clear()
        fingerprint = volume_fingerprint(self.volume)
        changed, self._fingerprint = fingerprint != self._fingerprint, fingerprint
        return requested or changed

    def send(self) -> bool:
        """POST one heartbeat. True when it is done with: accepted, or refused for good (4xx)."""
        request = urllib.request.Request(  # noqa: S310 (heartbeat_from_env allows http(s) only)
            self.url,
            data=b"{}",
            method="POST",
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "User-Agent": HealthHandler.server_version,
            },
        )
        try:
            with self._opener.open(request, timeout=HEARTBEAT_TIMEOUT_SECONDS) as response:
                response.read()
            return True
        except urllib.error.HTTPError as exc:
            log(f"heartbeat: {self.url} answered {exc.code}")
            return 400 <= exc.code < 500
        except (OSError, ValueError, http.client.HTTPException) as exc:
            log(f"heartbeat: {self.url} could not be reached: {getattr(exc, 'reason', exc)}")
            return False


def heartbeat_from_env(environ: dict[str, str], volume: Path) -> Heartbeat | None:
    """The heartbeat the environment asks for, or None when it names no URL or token."""
    url = environ.get("WORKSPACE_HEARTBEAT_URL", "").strip()
    token = environ.get("WORKSPACE_AGENT_TOKEN", "").strip()
    if not url or not token:
        return None
    if urlsplit(url).scheme not in ("http", "https"):
        log(f"heartbeats off: WORKSPACE_HEARTBEAT_URL must be an http(s) URL, not {url!r}")
        return None
    raw = environ.get("WORKSPACE_HEARTBEAT_INTERVAL_SECONDS", "")
    try:
        interval = float(raw) if raw else HEARTBEAT_INTERVAL_SECONDS
        if not interval > 0:
            raise ValueError
    except ValueError:
        log(f"WORKSPACE_HEARTBEAT_INTERVAL_SECONDS={raw!r} is not a positive number; using the default")
        interval = HEARTBEAT_INTERVAL_SECONDS
    return Heartbeat(url=url, token=token, interval=interval, volume=volume)


class HealthHandler(BaseHTTPRequestHandler):
    server: AgentServer
    server_version = "local-workspace-agent/1"

    def parse_request(self) -> bool:
        # Every request passes here, whatever its method: the one place to notice use.
        parsed = super().parse_request()
        if parsed and not (self.command in ("GET", "HEAD") and urlsplit(self.path).path == "/health"):
            self.server.note_activity()
        return parsed

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/health":
            self._json(200, self.server.health())
        else:
            self._not_found()

    def _not_found(self) -> None:
        self._json(404, {"error": "not_found", "path": urlsplit(self.path).path})

    do_POST = do_PUT = do_PATCH = do_DELETE = _not_found

    def do_HEAD(self) -> None:
        self._json(404, {"error": "not_found"}, body=False)

    def _json(self, status: int, payload: dict[str, Any], *, body: bool = True) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The driver polls /health every few milliseconds while waiting: keep those out of the log.
        if urlsplit(self.path).path != "/health" or code != 200:
            super().log_request(code, size)

    def log_message(self, format: str, *args: Any) -> None:
        log(f"{self.address_string()} {format % args}")


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        workspace_id: str,
        installation: str = "",
        volume: Path,
        limits: dict[str, Any],
        heartbeat: Heartbeat | None = None,
    ):
        super().__init__(address, HealthHandler)
        self.workspace_id = workspace_id
        self.installation = installation
        self.volume = volume
        self.limits = limits
        self.heartbeat = heartbeat
        self.started = time.monotonic()

    def note_activity(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.note_request()

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "workspace_id": self.workspace_id,
            "installation": self.installation,
            "git_ref": read_git_ref(self.volume / "repo"),
            "uptime_seconds": round(time.monotonic() - self.started, 3),
            "limits": self.limits,
        }


def _terminate(signum: int, frame: Any) -> None:
    # Raised in the main thread, inside serve_forever: unwinds to the clean shutdown below.
    raise SystemExit(0)


def serve(args: argparse.Namespace) -> int:
    """The machine's life after daemonizing. Returns its exit status."""
    signal.signal(signal.SIGTERM, _terminate)
    log(f"workspace {args.workspace_id}: starting (pid {os.getpid()})")
    try:
        os.chdir(args.volume)
    except OSError as exc:
        log(f"cannot use the volume {args.volume}: {exc.strerror or exc}")
        return 1
    limits = apply_limits(args.memory_mb, args.cpus)
    log(f"limits applied: {limits['memory_mb']} MiB address space, CPUs {limits['cpu_list']}")
    threading.stack_size(THREAD_STACK_BYTES)
    heartbeat = heartbeat_from_env(dict(os.environ), args.volume)
    try:
        server = AgentServer(
            (args.bind, args.port),
            workspace_id=args.workspace_id,
            installation=args.installation,
            volume=args.volume,
            limits=limits,
            heartbeat=heartbeat,
        )
    except OSError as exc:
        log(f"cannot listen on {args.bind}:{args.port}: {exc.strerror or exc}")
        return 1
    log(f"listening on http://{args.bind}:{args.port}")
    if heartbeat is None:
        log("heartbeats off: WORKSPACE_HEARTBEAT_URL or WORKSPACE_AGENT_TOKEN is not set")
    else:
        heartbeat.start()
        log(f"heartbeats to {heartbeat.url} at most every {heartbeat.interval:g} s while in use")
    try:
        server.serve_forever(poll_interval=0.5)
    except SystemExit:
        log("SIGTERM received: shutting down")
    finally:
        if heartbeat is not None:
            heartbeat.stop()
        server.server_close()
    log("stopped")
    return 0


def _write_pid_file(path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, path)  # the driver never reads a half-written pid


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ready_r, ready_w = os.pipe()
    if os.fork() == 0:
        try:
            # Intermediate: a new session without a terminal, then gone, so that the machine below is
            # orphaned to init at once and can never acquire a controlling terminal.
            os.close(ready_r)
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
        except BaseException:
            os._exit(1)
        _daemon(args, ready_w)

    # Launcher: reap the intermediate, then wait for the machine to say it has written its pid file.
    # Silent on failure: the last line of the log should be the machine's own reason.
    os.close(ready_w)
    os.wait()
    ready, _, _ = select.select([ready_r], [], [], LAUNCH_TIMEOUT_SECONDS)
    return 0 if ready and os.read(ready_r, 64).strip() else 1


def _daemon(args: argparse.Namespace, ready_w: int) -> None:
    """The machine itself, in its own process group. Never returns."""
    status = 1
    try:
        os.setpgid(0, 0)  # stop and destroy signal the group: the machine and whatever it started
        _write_pid_file(args.pid_file)
        os.write(ready_w, f"{os.getpid()}\n".encode())
        os.close(ready_w)
        status = serve(args)
    except BaseException:
        log("crashed: " + traceback.format_exc().rstrip())
    finally:
        sys.stdout.flush()
        os._exit(status)  # never fall back into the launcher's code


if __name__ == "__main__":
    sys.exit(main())
