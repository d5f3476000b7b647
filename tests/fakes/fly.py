"""A fake Fly Machines API: the calls the fly driver makes, with Fly's paths, JSON shapes and status
codes, on a loopback port.

Run it on its own (for development and benchmarks)::

    python -m tests.fakes.fly --port 4280 [--latency-ms 50] [--error-5xx-rate 0.1] ...

or from a test (``FakeFly().start()``, or ``with FakeFly() as fly: ...``). What it implements, as
Fly documents it (docs.machines.dev; fly.io/docs/machines/api/):

* ``/v1/apps/{app}/volumes``: create (``name`` may hold only lowercase letters, digits and
  underscores, at most 30 characters), list, get, delete. A deleted volume is soft-deleted: it stays
  in the list in state ``pending_destroy``, as Fly's do for a day. A volume attached to a machine
  that is not yet destroyed cannot be deleted (412).
* ``/v1/apps/{app}/machines``: create (validates ``config.image``, ``config.guest`` against Fly's
  CPU and memory rules, ``config.mounts``), list (``?metadata.<key>=<value>``, ``?region=``,
  ``?include_deleted=``), get, ``/start``, ``/stop``, ``/wait?state=&timeout=`` (1..60 s; 408 when
  the state is not reached in time), ``DELETE ?force=true``.
* States move on their own after configurable delays: created → starting → started on create and
  start; stopping → stopped; destroying → destroyed (which detaches the volume).
* Every machine gets a 6PN-style IPv6 ``private_ip`` (``fdaa:...``); every answer carries a
  ``fly-request-id`` header; ``Authorization: Bearer <token>`` is required.
* Fly's per-action rate limits (fly.io/docs/machines/api/working-with-machines-api/#rate-limits):
  1 request/s per action and machine (app-wide for creates and lists), bursts of 3; "get machine"
  5/s, bursts of 10. Past them: 429 with ``Retry-After``.

Fault switches, settable from the test process (``fake.set_faults(...)``) and over HTTP for a
long-running instance (``POST /__fake__/faults`` with a JSON object; ``GET`` reads them, ``DELETE``
resets them). Each ``*_rate`` is the probability that one API request gets that fault, drawn from a
seeded generator (``--seed``), so a run is repeatable:

* ``latency_ms``: added to every request.
* ``error_5xx_rate``: answer 500/502/503 without acting.
* ``rate_limit_rate``: answer 429 with ``Retry-After: retry_after_seconds`` without acting.
* ``timeout_rate``: hold the request for ``hang_seconds`` (longer than the client should wait),
  then drop the connection without acting.
* ``capacity_rate``: on machine and volume creates, Fly's capacity refusals (409 "aborted:
  insufficient resources available to fulfill request: ...", 422 ``insufficient_capacity``, 409
  "aborted: no capacity" for volumes).
* ``lost_response_rate``: act, then drop the connection or answer 502: the request succeeded but
  its answer was lost.
* ``never_start``: machines created or started while it is on stay in ``starting``.
* ``ignore_metadata_filter``: machine lists ignore ``?metadata.<key>=`` and answer every machine of
  the app, as a provider with a bug (or an older API version) might: the driver must not trust it.
* ``actions``: if set, the rates above apply only to these actions (e.g. ``["create_machine"]``).

Also ``GET /__fake__/inventory`` (live machines and volumes), ``GET /__fake__/requests`` (what was
asked and answered) and ``POST /__fake__/reset``; from Python, ``fake.inventory()`` etc.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import string
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACTIONS = (
    "list_machines",
    "create_machine",
    "get_machine",
    "start_machine",
    "stop_machine",
    "wait_machine",
    "delete_machine",
    "list_volumes",
    "create_volume",
    "get_volume",
    "delete_volume",
)
# Fly's documented limits: (requests per second, burst), per action and machine.
DEFAULT_RATE_LIMITS: dict[str, tuple[float, int]] = {"get_machine": (5.0, 10), "*": (1.0, 3)}

VOLUME_NAME = re.compile(r"[a-z0-9_]{1,30}")
CPUS = {"shared": (1, 2, 4, 6, 8), "performance": (1, 2, 4, 6, 8, 10, 12, 14, 16)}
MEMORY_PER_CPU_MB = {"shared": (256, 2048), "performance": (2048, 8192)}
MAX_VOLUME_GB = 500
WAIT_STATES = ("started", "stopped", "suspended", "destroyed")
VOLUME_GONE = ("pending_destroy", "destroyed")
_ROUTE = re.compile(
    r"^/v1/apps/(?P<app>[^/]+)/(?P<kind>machines|volumes)(?:/(?P<id>[^/]+))?(?:/(?P<verb>[a-z_]+))?/?$"
)
_ID_CHARS = string.ascii_lowercase + string.digits


class Drop(Exception):
    """Close the connection without answering."""


@dataclass
class Faults:
    """What goes wrong, and how often. Rates are probabilities per API request."""

    latency_ms: float = 0.0
    error_5xx_rate: float = 0.0
    rate_limit_rate: float = 0.0
    timeout_rate: float = 0.0
    capacity_rate: float = 0.0
    lost_response_rate: float = 0.0
    never_start: bool = False
    ignore_metadata_filter: bool = False
    actions: list[str] | None = None
    retry_after_seconds: int = 1  # what an injected 429 says
    hang_seconds: float = 5.0  # how long an injected timeout holds the request

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name: f for f in fields(self)}
        for key, value in values.items():
            if key not in known:
                raise ValueError(f"unknown fault {key!r}; known: {', '.join(known)}")
            if key == "actions":
                if value is not None and (
                    not isinstance(value, list) or any(action not in ACTIONS for action in value)
                ):
                    raise ValueError(f"actions must be null or a list of {', '.join(ACTIONS)}")
            elif key in ("never_start", "ignore_metadata_filter"):
                value = bool(value)
            elif not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{key} must be a number >= 0")
            elif key.endswith("_rate") and value > 1:
                raise ValueError(f"{key} is a probability: between 0 and 1")
            setattr(self, key, value)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeFly:
    """The fake API and its state. Thread-safe: the server answers each request on its own thread."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = "test-token",  # noqa: S107 (the fake's own test credential)
        seed: int = 0,
        create_delay: float = 0.02,
        start_delay: float = 0.05,
        stop_delay: float = 0.05,
        destroy_delay: float = 0.05,
        rate_limits: dict[str, tuple[float, int]] | None = DEFAULT_RATE_LIMITS,
        gpu_kinds: tuple[str, ...] = (),
        default_region: str = "iad",
        verbose: bool = False,
    ):
        self.host, self.port = host, port
        self.token = token
        self.seed = seed
        self.create_delay, self.start_delay = create_delay, start_delay
        self.stop_delay, self.destroy_delay = stop_delay, destroy_delay
        self.rate_limits = rate_limits
        self.gpu_kinds = tuple(gpu_kinds)
        self.default_region = default_region
        self.verbose = verbose
        self.faults = Faults()
        self._random = random.Random(seed)  # noqa: S311 (seeded on purpose: repeatable faults)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.machines: dict[str, dict[str, Any]] = {}
        self.volumes: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    # --- Running ---------------------------------------------------------------------------------

    def start(self) -> FakeFly:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-fly", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases requests held by an injected timeout
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeFly:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- Test access -----------------------------------------------------------------------------

    def set_faults(self, **values: Any) -> None:
        with self._lock:
            self.faults.update(values)

    def reset_faults(self) -> None:
        with self._lock:
            self.faults = Faults()

    def reset(self) -> None:
        """Forget everything: machines, volumes, faults, rate-limit buckets, the request log."""
        with self._lock:
            self.machines.clear()
            self.volumes.clear()
            self.requests.clear()
            self._buckets.clear()
            self.faults = Faults()

    def inventory(self) -> dict[str, list[dict[str, Any]]]:
        """Live machines (not destroyed) and volumes (not deleted), as the API shows them."""
        with self._lock:
            machines = [self._advance(m) for m in self.machines.values()]
            return {
                "machines": [_public(m) for m in machines if m["state"] != "destroyed"],
                "volumes": [_public(v) for v in self.volumes.values() if v["state"] not in VOLUME_GONE],
            }

    def requests_for(self, action: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["action"] == action]

    # --- State ---------------------------------------------------------------------------------------

    def _id(self, length: int, chars: str = "0123456789abcdef") -> str:
        return "".join(self._random.choice(chars) for _ in range(length))

    def _request_id(self) -> str:
        return "01" + self._id(24, "0123456789ABCDEFGHJKMNPQRSTVWXYZ") + "-" + self.default_region

    def _advance(self, machine: dict[str, Any]) -> dict[str, Any]:
        """Apply the machine's state changes that are due."""
        now = time.monotonic()
        pending = machine["_pending"]
        while pending and pending[0][0] <= now:
            _, state = pending.pop(0)
            self._set_state(machine, state)
        return machine

    def _set_state(self, machine: dict[str, Any], state: str) -> None:
        machine["state"] = state
        machine["updated_at"] = _now_iso()
        machine["events"].insert(
            0,
            {
                "type": {"started": "start", "stopped": "exit", "destroyed": "destroy"}.get(state, "launch"),
                "status": state,
                "source": "flyd",
                "timestamp": int(time.time() * 1000),
            },
        )
        if state == "destroyed":
            for volume in self.volumes.values():
                if volume["attached_machine_id"] == machine["id"]:
                    volume["attached_machine_id"] = None
                    volume["attached_alloc_id"] = None

    def _schedule(self, machine: dict[str, Any], *steps: tuple[float, str]) -> None:
        start = time.monotonic()
        machine["_pending"] = []
        offset = 0.0
        for delay, state in steps:
            offset += delay
            machine["_pending"].append((start + offset, state))
        self._advance(machine)

    def _boot(self, machine: dict[str, Any], first_delay: float) -> None:
        if self.faults.never_start:
            self._schedule(machine, (first_delay, "starting"))
        else:
            self._schedule(machine, (first_delay, "starting"), (self.start_delay, "started"))

    def _rate_limited(self, action: str, key: str) -> float:
        """0 if the request may go ahead, else the seconds until it may (token buckets)."""
        if not self.rate_limits:
            return 0.0
        rate, burst = self.rate_limits.get(action) or self.rate_limits.get("*") or (0, 0)
        if not rate:
            return 0.0
        now = time.monotonic()
        tokens, last = self._buckets.get((action, key), (float(burst), now))
        tokens = min(float(burst), tokens + (now - last) * rate)
        if tokens >= 1:
            self._buckets[(action, key)] = (tokens - 1, now)
            return 0.0
        self._buckets[(action, key)] = (tokens, now)
        return (1 - tokens) / rate

    def _draw_fault(self, action: str) -> str | None:
        faults = self.faults
        if faults.actions is not None and action not in faults.actions:
            return None
        for kind, rate in (
            ("timeout", faults.timeout_rate),
            ("5xx", faults.error_5xx_rate),
            ("429", faults.rate_limit_rate),
            ("capacity", faults.capacity_rate if action in ("create_machine", "create_volume") else 0),
            ("lost", faults.lost_response_rate),
        ):
            if rate and self._random.random() < rate:
                return kind
        return None

    # --- The API -----------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        """One API request (already past auth, limits and faults): (status, JSON body)."""
        match = _ROUTE.match(path)
        assert match  # routed by the handler
        app, kind, ident, verb = match["app"], match["kind"], match["id"], match["verb"]
        if kind == "volumes":
            if ident is None:
                return self._list_volumes(app) if method == "GET" else self._create_volume(app, body)
            volume = self.volumes.get(ident)
            if volume is None or volume["_app"] != app:
                return 404, {"error": "volume not found"}
            return (200, _public(volume)) if method == "GET" else self._delete_volume(volume)
        if ident is None:
            return self._list_machines(app, query) if method == "GET" else self._create_machine(app, body)
        machine = self.machines.get(ident)
        if machine is None or machine["_app"] != app:
            return 404, {"error": "machine not found"}
        self._advance(machine)
        if verb is None:
            return (200, _public(machine)) if method == "GET" else self._delete_machine(machine, query)
        if verb == "start":
            return self._start(machine)
        if verb == "stop":
            return self._stop(machine)
        return 404, {"error": "not found"}

    def _list_machines(self, app: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        include_deleted = query.get("include_deleted", ["false"])[0] == "true"
        region = query.get("region", [None])[0]
        wanted = {
            key[len("metadata.") :]: values[0] for key, values in query.items() if key.startswith("metadata.")
        }
        if self.faults.ignore_metadata_filter:
            wanted = {}
        found = []
        for machine in self.machines.values():
            self._advance(machine)
            metadata = machine["config"].get("metadata") or {}
            if (
                machine["_app"] == app
                and (include_deleted or machine["state"] != "destroyed")
                and (region is None or machine["region"] == region)
                and all(metadata.get(key) == value for key, value in wanted.items())
            ):
                found.append(_public(machine))
        return 200, found

    def _create_machine(self, app: str, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("config"), dict):
            return 400, {"error": "invalid config: a config object is required"}
        config = body["config"]
        region = body.get("region") or self.default_region
        if not isinstance(config.get("image"), str) or not config["image"]:
            return 400, {"error": "invalid config.image: an image is required"}
        problem = self._guest_problem(config.get("guest") or {}, region)
        if problem:
            return 400, {"error": problem}
        metadata = config.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            return 400, {"error": "invalid config.metadata: keys and values must be strings"}
        mounts = config.get("mounts") or []
        if len(mounts) > 1:
            return 400, {"error": "invalid config.mounts: a machine can mount only one volume"}
        volume = None
        if mounts:
            volume = self.volumes.get(mounts[0].get("volume") or "")
            if volume is None or volume["_app"] != app or volume["state"] in VOLUME_GONE:
                return 400, {
                    "error": f"invalid config.mounts[0].volume: volume {mounts[0].get('volume')!r} not found"
                }
            if volume["region"] != region:
                return 400, {
                    "error": f"invalid config.mounts[0].volume: volume {volume['id']} is in region "
                    f"{volume['region']}, not {region}"
                }
            if not str(mounts[0].get("path") or "").startswith("/"):
                return 400, {"error": "invalid config.mounts[0].path: must be an absolute path"}
            holder = self.machines.get(volume["attached_machine_id"] or "")
            if holder is not None and self._advance(holder)["state"] != "destroyed":
                return 412, {
                    "error": f"failed_precondition: volume {volume['id']} is already attached to machine {holder['id']}"
                }
        machine_id = self._id(14)
        now = _now_iso()
        machine = {
            "id": machine_id,
            "name": body.get("name") or f"machine-{machine_id[:6]}",
            "state": "created",
            "region": region,
            "instance_id": self._id(26, "0123456789ABCDEFGHJKMNPQRSTVWXYZ"),
            "private_ip": "fdaa:0:{}:a7b:{}:{}:{}:2".format(*(self._id(4) for _ in range(4))),
            "config": config,
            "image_ref": {
                "registry": "registry-1.docker.io",
                "repository": config["image"].split(":")[0],
                "tag": config["image"].split(":")[1] if ":" in config["image"] else "latest",
                "digest": "sha256:" + self._id(64),
                "labels": {},
            },
            "created_at": now,
            "updated_at": now,
            "events": [],
            "_app": app,
            "_pending": [],
        }
        self._set_state(machine, "created")
        self.machines[machine_id] = machine
        if volume is not None:
            volume["attached_machine_id"] = machine_id
            volume["attached_alloc_id"] = machine["instance_id"]
        if body.get("skip_launch"):
            return 200, _public(machine)
        self._boot(machine, self.create_delay)
        return 200, _public(machine)

    def _guest_problem(self, guest: dict[str, Any], region: str) -> str | None:
        kind = guest.get("cpu_kind", "shared")
        cpus = guest.get("cpus", 1)
        memory = guest.get("memory_mb", 256)
        if kind not in CPUS:
            return f"invalid config.guest.cpu_kind: {kind!r} is not a CPU kind; use shared or performance"
        if cpus not in CPUS[kind]:
            return (
                f"invalid config.guest.cpus: {cpus} is not a valid number of CPUs for {kind} guests; "
                f"valid numbers are {list(CPUS[kind])}"
            )
        if not isinstance(memory, int) or memory % 256:
            return (
                f"invalid config.guest.memory_mb: invalid memory size {memory}; must be in 256 MiB increment"
            )
        low, high = (per_cpu * cpus for per_cpu in MEMORY_PER_CPU_MB[kind])
        if memory < low:
            return f"invalid config.guest.memory_mb, minimum required {low} MiB"
        if memory > high:
            return f"invalid config.guest.memory_mb, maximum allowed {high} MiB"
        gpu = guest.get("gpu_kind")
        if gpu is not None and gpu not in self.gpu_kinds:
            return f"invalid config.guest.gpu_kind: {gpu!r} is not available in region {region}"
        return None

    def _start(self, machine: dict[str, Any]) -> tuple[int, Any]:
        state = machine["state"]
        if state == "destroyed":
            return 404, {"error": "machine not found"}
        if state in ("started", "starting"):
            return 200, {"previous_state": state, "migrated": False, "new_host": ""}
        if state not in ("stopped", "created", "suspended", "failed"):
            return 412, {
                "error": f"failed_precondition: unable to start machine from current state: '{state}'"
            }
        self._set_state(machine, "starting")
        self._boot(machine, 0.0)
        return 200, {"previous_state": state, "migrated": False, "new_host": ""}

    def _stop(self, machine: dict[str, Any]) -> tuple[int, Any]:
        state = machine["state"]
        if state == "destroyed":
            return 404, {"error": "machine not found"}
        if state == "destroying":
            return 412, {"error": "failed_precondition: machine is being destroyed"}
        if state in ("started", "starting", "created"):
            self._set_state(machine, "stopping")
            self._schedule(machine, (self.stop_delay, "stopped"))
        return 200, {"ok": True}

    def _delete_machine(self, machine: dict[str, Any], query: dict[str, list[str]]) -> tuple[int, Any]:
        state = machine["state"]
        if state == "destroyed":
            return 404, {"error": "machine not found"}
        force = query.get("force", ["false"])[0] == "true"
        if state in ("started", "starting", "stopping") and not force:
            return 412, {"error": "failed_precondition: unable to destroy machine, not currently stopped"}
        if state != "destroying":
            self._set_state(machine, "destroying")
            self._schedule(machine, (self.destroy_delay, "destroyed"))
        return 200, {"ok": True}

    def wait(self, app: str, machine_id: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        """``GET .../machines/{id}/wait``: blocks (without holding the lock) until the state or timeout."""
        state = query.get("state", ["started"])[0]
        if state not in WAIT_STATES:
            return 400, {"error": f"invalid state {state!r}: must be one of {', '.join(WAIT_STATES)}"}
        try:
            timeout = int(query.get("timeout", ["60"])[0])
        except ValueError:
            timeout = -1
        if not 1 <= timeout <= 60:
            return 400, {"error": "invalid timeout: must be a whole number of seconds between 1 and 60"}
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                machine = self.machines.get(machine_id)
                if machine is None or machine["_app"] != app:
                    return 404, {"error": "machine not found"}
                current = self._advance(machine)["state"]
            if current == state:
                return 200, {"ok": True}
            if current == "destroyed":
                return 400, {"error": f"machine {machine_id} was destroyed; it will never be {state}"}
            if time.monotonic() >= deadline or self._stopping.wait(0.01):
                return 408, {
                    "error": f"deadline_exceeded: machine did not reach state {state} within {timeout}s"
                }

    def _list_volumes(self, app: str) -> tuple[int, Any]:
        return 200, [_public(v) for v in self.volumes.values() if v["_app"] == app]

    def _create_volume(self, app: str, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, {"error": "invalid request body"}
        name = body.get("name")
        if not isinstance(name, str) or not VOLUME_NAME.fullmatch(name):
            return 400, {
                "error": "invalid name: a volume name may contain only lowercase letters, numbers and "
                "underscores, and be at most 30 characters long"
            }
        region = body.get("region")
        if not isinstance(region, str) or not region:
            return 400, {"error": "invalid region: a region is required"}
        size = body.get("size_gb", 3)
        if not isinstance(size, int) or not 1 <= size <= MAX_VOLUME_GB:
            return 400, {"error": f"invalid size_gb: must be between 1 and {MAX_VOLUME_GB}"}
        volume_id = "vol_" + self._id(16, _ID_CHARS)
        volume = {
            "id": volume_id,
            "name": name,
            "state": "created",
            "size_gb": size,
            "region": region,
            "zone": self._id(4),
            "encrypted": body.get("encrypted", True),
            "attached_machine_id": None,
            "attached_alloc_id": None,
            "created_at": _now_iso(),
            "blocks": 0,
            "block_size": 0,
            "blocks_free": 0,
            "blocks_avail": 0,
            "fstype": "ext4",
            "snapshot_retention": body.get("snapshot_retention", 5),
            "auto_backup_enabled": True,
            "host_dedication_key": "",
            "_app": app,
            "_compute": body.get("compute"),
        }
        self.volumes[volume_id] = volume
        return 200, _public(volume)

    def _delete_volume(self, volume: dict[str, Any]) -> tuple[int, Any]:
        if volume["state"] in VOLUME_GONE:
            return 404, {"error": "volume not found"}
        holder = self.machines.get(volume["attached_machine_id"] or "")
        if holder is not None and self._advance(holder)["state"] != "destroyed":
            return 412, {"error": f"failed_precondition: volume is attached to machine {holder['id']}"}
        volume["state"] = "pending_destroy"
        return 200, _public(volume)

    def capacity_refusal(self, action: str) -> tuple[int, Any]:
        """One of Fly's capacity answers for a create (their words, as flaps and flyd send them)."""
        if action == "create_volume":
            return 409, {"error": "aborted: no capacity"}
        if self._random.random() < 0.5:
            return 409, {
                "error": "aborted: insufficient resources available to fulfill request: could not reserve "
                "resource for machine: insufficient memory available to fulfill request"
            }
        return 422, {
            "error": "could not reserve resource for machine: insufficient CPUs available to fulfill request",
            "status": "insufficient_capacity",
        }


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps({k: v for k, v in record.items() if not k.startswith("_")}))


def _action(method: str, kind: str, ident: str | None, verb: str | None) -> str | None:
    if kind == "volumes":
        if verb is not None:
            return None
        if ident is None:
            return {"GET": "list_volumes", "POST": "create_volume"}.get(method)
        return {"GET": "get_volume", "DELETE": "delete_volume"}.get(method)
    if ident is None:
        return {"GET": "list_machines", "POST": "create_machine"}.get(method)
    if verb is None:
        return {"GET": "get_machine", "DELETE": "delete_machine"}.get(method)
    return {
        ("POST", "start"): "start_machine",
        ("POST", "stop"): "stop_machine",
        ("GET", "wait"): "wait_machine",
    }.get((method, verb))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the driver's pooled client expects
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart
    fake: FakeFly

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        if self.fake.verbose:
            super().log_message(format, *args)

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        try:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(400, {"error": "invalid JSON body"})
            return
        try:
            if parts.path.startswith("/__fake__/"):
                self._admin(method, parts.path, body)
            else:
                self._api(method, parts.path, query, body)
        except Drop:
            self.close_connection = True  # nothing written: the client sees the connection dropped

    # --- The fake's own switches --------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: Any) -> None:
        fake = self.fake
        if path == "/__fake__/faults":
            if method == "POST":
                try:
                    fake.set_faults(**(body or {}))
                except (ValueError, TypeError) as exc:
                    self._send(400, {"error": str(exc)})
                    return
            elif method == "DELETE":
                fake.reset_faults()
            with fake._lock:
                self._send(200, asdict(fake.faults))
        elif path == "/__fake__/inventory" and method == "GET":
            self._send(200, fake.inventory())
        elif path == "/__fake__/requests" and method == "GET":
            with fake._lock:
                self._send(200, list(fake.requests))
        elif path == "/__fake__/reset" and method == "POST":
            fake.reset()
            self._send(200, {"ok": True})
        else:
            self._send(404, {"error": "not found"})

    # --- The API, with its limits and faults ----------------------------------------------------------

    def _api(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> None:
        fake = self.fake
        with fake._lock:
            request_id = fake._request_id()
            faults = Faults(**asdict(fake.faults))
        headers = {"fly-request-id": request_id}
        match = _ROUTE.match(path)
        action = _action(method, match["kind"], match["id"], match["verb"]) if match else None
        record = {
            "method": method,
            "path": path,
            "query": query,
            "action": action,
            "request_id": request_id,
            "at": time.monotonic(),
        }

        def answer(status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
            record["status"] = status
            with fake._lock:
                fake.requests.append(record)
            self._send(status, payload, {**headers, **(extra or {})})

        if fake.token is not None and self.headers.get("Authorization") != f"Bearer {fake.token}":
            answer(401, {"error": "You must be authenticated to view this."})
            return
        if action is None:
            answer(404, {"error": "not found"})
            return
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        with fake._lock:
            wait = fake._rate_limited(action, match["id"] or match["app"])
            fault = None if wait else fake._draw_fault(action)
        if wait:
            answer(429, {"error": "rate limit exceeded"}, {"Retry-After": str(max(1, math.ceil(wait)))})
            return
        if fault == "timeout":
            record["status"] = "timeout"
            with fake._lock:
                fake.requests.append(record)
            fake._stopping.wait(faults.hang_seconds)
            raise Drop
        if fault == "5xx":
            with fake._lock:
                status = fake._random.choice((500, 502, 503))
            answer(status, {"error": "internal server error"})
            return
        if fault == "429":
            answer(
                429, {"error": "rate limit exceeded"}, {"Retry-After": str(int(faults.retry_after_seconds))}
            )
            return
        if fault == "capacity":
            with fake._lock:
                answer(*fake.capacity_refusal(action))
            return
        if action == "wait_machine":
            status, payload = fake.wait(match["app"], match["id"], query)
        else:
            with fake._lock:
                status, payload = fake.handle(method, path, query, body)
        if fault == "lost":
            with fake._lock:
                drop = fake._random.random() < 0.5
            record["status"] = f"lost ({status})"
            if drop:
                with fake._lock:
                    fake.requests.append(record)
                raise Drop
            answer(502, {"error": "bad gateway"})
            record["status"] = f"lost ({status})"  # what the log shows: the action was done
            return
        answer(status, payload)

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.fly", description="A fake Fly Machines API on a loopback port."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4280)
    parser.add_argument("--token", default=None, help="the only Bearer token accepted (default: any)")
    parser.add_argument("--app", default="workspaces", help="the app name to print in the settings")
    parser.add_argument("--region", default="ams", help="the region to print in the settings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--create-delay", type=float, default=0.02, help="seconds from created to starting")
    parser.add_argument("--start-delay", type=float, default=1.0, help="seconds from starting to started")
    parser.add_argument("--stop-delay", type=float, default=0.5)
    parser.add_argument("--destroy-delay", type=float, default=0.5)
    parser.add_argument("--no-rate-limits", action="store_true", help="switch off Fly's per-action limits")
    parser.add_argument("--gpu-kind", action="append", default=[], help="a GPU kind to offer (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    for fault in ("latency_ms", *(f.name for f in fields(Faults) if f.name.endswith("_rate"))):
        parser.add_argument(f"--{fault.replace('_', '-')}", type=float, default=0.0, dest=fault)
    args = parser.parse_args(argv)

    fake = FakeFly(
        host=args.host,
        port=args.port,
        token=args.token,
        seed=args.seed,
        create_delay=args.create_delay,
        start_delay=args.start_delay,
        stop_delay=args.stop_delay,
        destroy_delay=args.destroy_delay,
        rate_limits=None if args.no_rate_limits else DEFAULT_RATE_LIMITS,
        gpu_kinds=tuple(args.gpu_kind),
        default_region=args.region,
        verbose=args.verbose,
    )
    fake.set_faults(
        latency_ms=args.latency_ms,
        **{f.name: getattr(args, f.name) for f in fields(Faults) if f.name.endswith("_rate")},
    )
    fake.start()
    token = args.token or "x"
    print(f"Fake Fly Machines API on {fake.url} (Ctrl-C stops it). Point the app at it with:\n")
    print(
        f"  WORKSPACE_DRIVER=fly FLY_API_BASE_URL={fake.url} FLY_API_TOKEN={token} "
        f"FLY_APP_NAME={args.app} FLY_REGION={args.region} FLY_IMAGE=registry.example.com/workspace:latest\n"
    )
    print(f"Faults:    curl -s -X POST {fake.url}/__fake__/faults -d '{{\"error_5xx_rate\": 0.3}}'")
    print(f"Inventory: curl -s {fake.url}/__fake__/inventory", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
