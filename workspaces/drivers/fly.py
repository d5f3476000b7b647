"""The fly driver: each workspace is a Fly Machine mounting its own Fly Volume, through the Fly
Machines REST API (https://fly.io/docs/machines/api/; OpenAPI at docs.machines.dev).

What it makes for a workspace, and how it finds it again (no state is kept on our side):

* A volume named ``ws`` + the workspace id's 16 bytes in lowercase base32 (28 characters). Fly
  volume names may hold only lowercase letters, digits and underscores, at most 30 characters
  (reports disagree on whether underscores pass, so the name uses letters and digits only), which
  rules out the id itself; this encoding fits, and is reversible, so a volume left without a
  machine still says whose it is (``list_volumes``).
* A machine named ``ws-<workspace id>`` with ``config.metadata`` ``{"workspace_id": <id>,
  "managed_by": "workspaces-control-plane"}``, found again with ``GET
  /machines?metadata.workspace_id=<id>``. Its config: ``image`` (``FLY_IMAGE``), ``guest``
  (``cpu_kind``, ``cpus``, ``memory_mb``, and ``gpu_kind`` with ``gpus: 1`` when asked: Fly's guest
  field names are Hardware's), ``mounts: [{volume, path: "/workspace"}]``, ``env`` (the spec's
  variables, plus ``WORKSPACE_REPO_URL`` and ``WORKSPACE_REPO_BRANCH``). On Fly the clone is the
  image's job: it clones the repository into ``/workspace`` at boot, so ``git_ref`` is not known
  here. Anyone who can read the Fly app's machine configs can read these variables.

Retries, and what is safe to retry:

* ``create`` adopts before it makes anything: an existing machine of the workspace (the oldest, if
  an earlier race left two; the others are destroyed), else its unattached volume. So a retry after
  "it succeeded but the answer was lost" finds what the lost answer would have described. A
  permanent failure of the machine create deletes the volume it made; after a transient one the
  volume stays, for the retry to adopt (or for ``destroy`` when the retries run out).
* Fly's rate limits are per action and machine (1 request/s, bursts of 3; "get machine" 5/s). A 429
  is retried inside the call when its ``Retry-After`` fits a small budget (a few seconds), else it
  is a transient ``DriverError``. Timeouts, dropped connections, 408 and 5xx are transient: reads
  and deletes are retried once or twice at once, the rest are left to the Celery task's backoff.
* Capacity and quota refusals (409, 412, 403 or 422 saying so) and invalid configuration (a 4xx
  naming a ``config.*`` field) are permanent, with Fly's words and what they concern. Every error
  and every Machine carries the ``fly-request-id`` of the answer.
* ``wait_started`` waits in a loop under our own deadline: Fly's wait endpoint takes at most 60 s.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import logging
import os
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from config.values import parse_uuid
from workspaces.hardware import Hardware, Problem

from .base import Driver, DriverError, Machine, MachineSpec, MachineState, Volume

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.machines.dev"
MANAGED_BY = "workspaces-control-plane"
MOUNT_PATH = "/workspace"
REQUIRED_SETTINGS = ("FLY_API_TOKEN", "FLY_APP_NAME", "FLY_REGION", "FLY_IMAGE")
CPU_KINDS = ("shared", "performance")
MAX_WAIT_SECONDS = 60  # what Fly's wait endpoint accepts

# Fly's machine states (fly.io/docs/machines/machine-states/) as ours.
_STATES = {
    "created": MachineState.CREATED,
    "creating": MachineState.CREATED,
    "starting": MachineState.STARTING,
    "restarting": MachineState.STARTING,
    "updating": MachineState.STARTING,
    "replacing": MachineState.STARTING,
    "started": MachineState.STARTED,
    "stopping": MachineState.STOPPED,
    "stopped": MachineState.STOPPED,
    "suspending": MachineState.STOPPED,
    "suspended": MachineState.STOPPED,
    "failed": MachineState.FAILED,
    "launch_failed": MachineState.FAILED,
    "destroying": MachineState.DESTROYED,
    "destroyed": MachineState.DESTROYED,
}
_GONE = ("destroying", "destroyed")
_VOLUME_GONE = (
    "scheduling_destroy",
    "fork_cleanup",
    "waiting_for_detach",
    "pending_destroy",
    "destroying",
    "destroyed",
)
_VOLUME_NAME = re.compile(r"ws([a-z2-7]{26})")
_CAPACITY_CODES = ("insufficient_capacity", "volume_placement_capacity")
_CAPACITY_WORDS = re.compile(
    r"capacity|insufficient (?:cpus?|memory|resources|ips?|gpus?)|could not reserve resource", re.IGNORECASE
)
_QUOTA_WORDS = re.compile(
    r"quota|limit (?:reached|exceeded)|exceeds? (?:the|your) (?:limit|quota)", re.IGNORECASE
)
_CONFIG_FIELD = re.compile(r"\bconfig\.[a-z_]+(?:\.[a-z_]+)*(?:\[\d+\](?:\.[a-z_]+)*)?")
_VOLUME_FIELD = re.compile(r"\binvalid (name|size_gb|region)\b")
# Fly's fields, as what they mean to the workspace's owner or operator.
_FIELDS = {
    "config.guest.cpu_kind": "hardware.cpu_kind",
    "config.guest.cpus": "hardware.cpus",
    "config.guest.memory_mb": "hardware.memory_mb",
    "config.guest.gpu_kind": "hardware.gpu_kind",
    "config.guest.gpus": "hardware.gpu_kind",
    "config.image": "the workspace image (FLY_IMAGE)",
    "config.env": "the workspace's environment variables",
    "size_gb": "hardware.volume_size_gb",
    "region": "the region (FLY_REGION)",
    "name": "the volume's name",
}


@dataclass(frozen=True)
class _Answer:
    status: int
    data: Any
    request_id: str | None


def volume_name(workspace_id: str) -> str:
    """The workspace's volume name: ``ws`` + its id's bytes in lowercase base32 (28 characters)."""
    encoded = base64.b32encode(uuid.UUID(workspace_id).bytes).decode().rstrip("=").lower()
    return f"ws{encoded}"


def workspace_of_volume(name: str) -> str | None:
    """The workspace id a volume name encodes, or None if it is not a name ``volume_name`` makes."""
    match = _VOLUME_NAME.fullmatch(name or "")
    if match is None:
        return None
    try:
        workspace_id = str(uuid.UUID(bytes=base64.b32decode(match[1].upper() + "======")))
    except (binascii.Error, ValueError):
        return None
    return workspace_id if volume_name(workspace_id) == name else None


class FlyDriver(Driver):
    name = "fly"

    def __init__(
        self,
        *,
        token: str,
        app: str,
        region: str,
        image: str,
        base_url: str = DEFAULT_BASE_URL,
        gpu_kinds: tuple[str, ...] = (),
        request_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        wait_chunk: int = MAX_WAIT_SECONDS,
        rate_limit_budget: float = 10.0,
        rate_limit_retries: int = 3,
        quick_retries: int = 2,
        retry_delay: float = 0.2,
        stop_timeout: float = 60.0,
        destroy_timeout: float = 60.0,
    ):
        self.token = token
        self.app = app
        self.region = region
        self.image = image
        self.base_url = base_url.rstrip("/")
        self.gpu_kinds = tuple(gpu_kinds)
        self.request_timeout = float(request_timeout)
        self.connect_timeout = float(connect_timeout)
        self.wait_chunk = max(1, min(int(wait_chunk), MAX_WAIT_SECONDS))
        self.rate_limit_budget = float(rate_limit_budget)
        self.rate_limit_retries = int(rate_limit_retries)
        self.quick_retries = int(quick_retries)
        self.retry_delay = float(retry_delay)
        self.stop_timeout = float(stop_timeout)
        self.destroy_timeout = float(destroy_timeout)
        self._client: httpx.Client | None = None
        self._client_pid: int | None = None
        self._client_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any) -> FlyDriver:
        """Built at start-up when ``WORKSPACE_DRIVER=fly``: every missing setting is named at once.
        No network call: a process must start even while Fly is unreachable."""
        from django.core.exceptions import ImproperlyConfigured

        missing = [name for name in REQUIRED_SETTINGS if not getattr(settings, name, "")]
        if missing:
            raise ImproperlyConfigured(
                f"WORKSPACE_DRIVER=fly needs {', '.join(missing)}: set "
                f"{'it' if len(missing) == 1 else 'them'} in the environment "
                "(README.md, 'Running against Fly.io, or the fake Fly server')."
            )
        base_url = getattr(settings, "FLY_API_BASE_URL", "") or DEFAULT_BASE_URL
        if not base_url.startswith(("https://", "http://")):
            raise ImproperlyConfigured(f"FLY_API_BASE_URL must be an http(s) URL; got {base_url!r}.")
        return cls(
            token=settings.FLY_API_TOKEN,
            app=settings.FLY_APP_NAME,
            region=settings.FLY_REGION,
            image=settings.FLY_IMAGE,
            base_url=base_url,
            gpu_kinds=tuple(getattr(settings, "FLY_GPU_KINDS", ()) or ()),
            request_timeout=getattr(settings, "FLY_REQUEST_TIMEOUT_SECONDS", 30.0),
        )

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # --- The Driver interface ------------------------------------------------------------------

    def check_hardware(self, hardware: Hardware) -> list[Problem]:
        problems = []
        if hardware.cpu_kind not in CPU_KINDS:
            problems.append(
                Problem(
                    "hardware.cpu_kind",
                    "invalid_cpu_kind",
                    f"Fly offers cpu_kind {' or '.join(CPU_KINDS)}; got {hardware.cpu_kind!r}.",
                    {"choices": list(CPU_KINDS)},
                )
            )
        if hardware.gpu_kind is not None and hardware.gpu_kind not in self.gpu_kinds:
            offered = (
                f"one of {', '.join(self.gpu_kinds)} or null"
                if self.gpu_kinds
                else f"null: this deployment offers no GPUs in Fly region {self.region}"
            )
            problems.append(
                Problem(
                    "hardware.gpu_kind",
                    "gpu_unavailable",
                    f"gpu_kind {hardware.gpu_kind!r} is not available; it must be {offered}.",
                    {"choices": list(self.gpu_kinds)},
                )
            )
        return problems

    def find(self, workspace_id: str) -> Machine | None:
        machines, request_id = self._machines_of(self._check_id(workspace_id))
        return self._machine(machines[0], request_id) if machines else None

    def list_machines(self) -> list[Machine]:
        answer = self._call(
            "GET", "/machines", params={"metadata.managed_by": MANAGED_BY}, what="list the workspace machines"
        )
        return [
            self._machine(machine, answer.request_id)
            for machine in _machines(answer.data)
            if _metadata(machine).get("managed_by") == MANAGED_BY and machine.get("state") not in _GONE
        ]

    def list_volumes(self) -> list[Volume]:
        """Every live volume of the app (ours or not), so that volumes left without a machine can be
        found and cleaned up."""
        answer = self._call("GET", "/volumes", what="list the workspace volumes")
        return [
            Volume(volume_id=volume["id"], workspace_id=workspace_of_volume(volume.get("name", "")))
            for volume in _volumes(answer.data)
            if volume.get("state") not in _VOLUME_GONE
        ]

    def create(self, spec: MachineSpec) -> Machine:
        workspace_id = self._check_id(spec.workspace_id)
        problems = self.check_hardware(spec.hardware)
        if problems:
            raise DriverError(problems[0].message)
        # A first attempt has no earlier machine or volume to adopt (MachineSpec.first_attempt).
        machines, request_id = ([], None) if spec.first_attempt else self._machines_of(workspace_id)
        if machines:
            # An earlier attempt's machine (its answer may have been lost): adopt it, and clear away
            # what an earlier race may have left beside it (one machine and one volume per workspace).
            for extra in machines[1:]:
                self._discard_machine(extra)
            mounted = {mount.get("volume") for mount in (machines[0].get("config") or {}).get("mounts") or []}
            for volume in self._volumes_of(workspace_id)[0]:
                if volume["id"] not in mounted and not volume.get("attached_machine_id"):
                    self._delete_volume_quietly(volume["id"])
            return self._adopt(machines[0], request_id)

        volume = self._volume_for(spec, workspace_id)
        body = {
            "name": f"ws-{workspace_id}",
            "region": self.region,
            "config": {
                "image": self.image,
                "guest": _guest(spec.hardware),
                "mounts": [{"volume": volume["id"], "path": MOUNT_PATH}],
                "env": _env(spec),
                "metadata": {"workspace_id": workspace_id, "managed_by": MANAGED_BY},
            },
        }
        try:
            answer = self._call(
                "POST",
                "/machines",
                json=body,
                what="create the workspace machine",
                capacity_subject=_hardware_words(spec.hardware),
            )
        except DriverError as exc:
            if not exc.transient:  # Fly said no: leave nothing behind
                self._delete_volume_quietly(volume["id"])
            raise
        return self._machine(answer.data, answer.request_id)

    def wait_started(self, machine_id: str, *, timeout: float) -> Machine:
        deadline = time.monotonic() + timeout
        while True:
            try:
                answer = self._get_machine(machine_id)
                machine, state = answer.data, answer.data.get("state")
                if state == "started":
                    return self._machine(machine, answer.request_id)
                if state in ("stopped", "suspended", "stopping", "suspending"):
                    raise DriverError(
                        "The workspace machine stopped while it was starting.", request_id=answer.request_id
                    )
                if _STATES.get(state) in (MachineState.FAILED, MachineState.DESTROYED):
                    raise DriverError(
                        f"The workspace machine could not start: Fly reports it {state}.",
                        request_id=answer.request_id,
                    )
                remaining = deadline - time.monotonic()
                if remaining < 1:
                    raise DriverError(
                        f"The workspace machine did not start within {timeout:g} s (Fly reports it {state}).",
                        request_id=answer.request_id,
                    )
                # Fly's wait holds a request at most 60 s: wait in chunks until our own deadline.
                self._wait(machine_id, "started", min(remaining, self.wait_chunk))
            except DriverError as exc:
                if not exc.transient:
                    raise
                if time.monotonic() + self.retry_delay * 2 >= deadline:
                    raise
                time.sleep(self.retry_delay * 2)  # a passing fault: keep waiting within our deadline

    def start(self, machine_id: str) -> Machine:
        answer = self._get_machine(machine_id)
        machine, state = answer.data, answer.data.get("state")
        if state in _GONE:
            raise DriverError(
                "The workspace machine was destroyed; it cannot be started.", request_id=answer.request_id
            )
        if state in ("started", "starting"):
            return self._machine(machine, answer.request_id)
        if state in ("stopping", "suspending"):
            self._wait_until(machine, "stopped" if state == "stopping" else "suspended", self.stop_timeout)
        started = self._call(
            "POST",
            f"/machines/{_q(machine_id)}/start",
            what="start the workspace machine",
            capacity_subject=_guest_words(machine),
            busy_is_transient=True,
        )
        return self._machine({**machine, "state": "starting"}, started.request_id)

    def stop(self, machine_id: str) -> Machine:
        answer = self._get_machine(machine_id)
        machine, state = answer.data, answer.data.get("state")
        if state in _GONE:
            raise DriverError(
                "The workspace machine was destroyed; there is nothing to stop.", request_id=answer.request_id
            )
        if state in ("stopped", "suspended"):
            return self._machine(machine, answer.request_id)
        request_id = answer.request_id
        if state != "stopping":
            request_id = self._call(
                "POST",
                f"/machines/{_q(machine_id)}/stop",
                what="stop the workspace machine",
                busy_is_transient=True,
            ).request_id
        if not self._wait_until(machine, "stopped", self.stop_timeout):
            raise DriverError(
                f"The workspace machine did not stop within {self.stop_timeout:g} s.",
                transient=True,
                request_id=request_id,
            )
        return self._machine({**machine, "state": "stopped"}, request_id)

    def destroy(self, workspace_id: str, *, keep_machine_id: str | None = None) -> None:
        workspace_id = self._check_id(workspace_id)
        answer = self._call(
            "GET",
            "/machines",
            params={"metadata.workspace_id": workspace_id},
            what="look up the workspace machine",
        )
        # The list is asked for this workspace's machines, but what is deleted is checked here again:
        # a provider that ignored the filter must not make us delete other workspaces' machines.
        machines = [
            m
            for m in _machines(answer.data)
            if _metadata(m).get("workspace_id") == workspace_id
            and _metadata(m).get("managed_by") == MANAGED_BY
            and m.get("state") != "destroyed"
        ]
        kept_volume = None
        if keep_machine_id is not None:
            kept = [m for m in machines if m.get("id") == keep_machine_id]
            if not kept:
                raise DriverError(f"Machine {keep_machine_id} is not at the provider; nothing was destroyed.")
            kept_volume = self._machine(kept[0], None).volume_id
            if kept_volume is None:
                raise DriverError(
                    f"Machine {keep_machine_id} mounts no volume, so the volume to keep is unknown; "
                    "nothing was destroyed."
                )
            machines = [m for m in machines if m.get("id") != keep_machine_id]
        for machine in machines:
            if machine.get("state") != "destroying":
                self._call(
                    "DELETE",
                    f"/machines/{_q(machine['id'])}",
                    params={"force": "true"},
                    what="destroy the workspace machine",
                    allow=(404,),
                )
        for machine in machines:
            # The volume can be deleted only once its machine is destroyed.
            if not self._wait_until(machine, "destroyed", self.destroy_timeout):
                raise DriverError(
                    f"The workspace machine was not destroyed within {self.destroy_timeout:g} s.",
                    transient=True,
                )
        for volume in self._volumes_of(workspace_id)[0]:
            if volume["id"] == kept_volume:
                continue
            self._call(
                "DELETE",
                f"/volumes/{_q(volume['id'])}",
                what="delete the workspace volume",
                allow=(404,),
                busy_is_transient=True,
            )

    # --- Steps -------------------------------------------------------------------------------------

    def _machines_of(self, workspace_id: str) -> tuple[list[dict[str, Any]], str | None]:
        """The workspace's live machines, oldest first."""
        answer = self._call(
            "GET",
            "/machines",
            params={"metadata.workspace_id": workspace_id},
            what="look up the workspace machine",
        )
        machines = [
            m
            for m in _machines(answer.data)
            if _metadata(m).get("workspace_id") == workspace_id
            and _metadata(m).get("managed_by") == MANAGED_BY
            and m.get("state") not in _GONE
        ]
        machines.sort(key=lambda m: (m.get("created_at") or "", m.get("id") or ""))
        return machines, answer.request_id

    def _volumes_of(self, workspace_id: str) -> tuple[list[dict[str, Any]], str | None]:
        """The workspace's live volumes, oldest first."""
        answer = self._call("GET", "/volumes", what="look up the workspace volume")
        name = volume_name(workspace_id)
        volumes = [
            v for v in _volumes(answer.data) if v.get("name") == name and v.get("state") not in _VOLUME_GONE
        ]
        volumes.sort(key=lambda v: (v.get("created_at") or "", v.get("id") or ""))
        return volumes, answer.request_id

    def _volume_for(self, spec: MachineSpec, workspace_id: str) -> dict[str, Any]:
        """The workspace's unattached volume (made by an earlier attempt), else a new one."""
        volumes, _ = ([], None) if spec.first_attempt else self._volumes_of(workspace_id)
        free = [v for v in volumes if not v.get("attached_machine_id")]
        if free:
            for extra in free[1:]:  # duplicates of an earlier race: one volume per workspace
                self._delete_volume_quietly(extra["id"])
            return free[0]
        if volumes:
            raise DriverError(
                "The workspace's volume is still attached to a machine being destroyed; will retry.",
                transient=True,
            )
        hardware = spec.hardware
        answer = self._call(
            "POST",
            "/volumes",
            json={
                "name": volume_name(workspace_id),
                "region": self.region,
                "size_gb": hardware.volume_size_gb,
                "encrypted": True,
                # One volume per workspace: there is no sibling to keep apart, and demanding a zone
                # of its own can only make the create fail.
                "require_unique_zone": False,
                # Placed where a machine of this size fits (the machine must run on the volume's host).
                "compute": _guest(hardware),
            },
            what="create the workspace volume",
            capacity_subject=f"a {hardware.volume_size_gb} GB volume",
        )
        return answer.data

    def _adopt(self, machine: dict[str, Any], request_id: str | None) -> Machine:
        if machine.get("state") in ("stopped", "suspended", "failed"):
            return self.start(machine["id"])
        return self._machine(machine, request_id)

    def _discard_machine(self, machine: dict[str, Any]) -> None:
        logger.warning(
            "Destroying duplicate machine %s of workspace %s",
            machine["id"],
            _metadata(machine).get("workspace_id"),
        )
        try:
            self._call(
                "DELETE",
                f"/machines/{_q(machine['id'])}",
                params={"force": "true"},
                what="destroy a duplicate workspace machine",
                allow=(404,),
            )
        except DriverError as exc:
            logger.warning("Could not destroy duplicate machine %s: %s", machine["id"], exc.message)

    def _delete_volume_quietly(self, volume_id: str) -> None:
        try:
            self._call(
                "DELETE", f"/volumes/{_q(volume_id)}", what="delete the workspace volume", allow=(404,)
            )
        except DriverError as exc:
            logger.warning("Could not delete volume %s: %s", volume_id, exc.message)

    def _get_machine(self, machine_id: str) -> _Answer:
        answer = self._call(
            "GET", f"/machines/{_q(machine_id)}", what="look up the workspace machine", allow=(404,)
        )
        if answer.status == 404:
            raise DriverError(f"There is no Fly machine {machine_id} any more.", request_id=answer.request_id)
        return answer

    def _wait(self, machine_id: str, state: str, seconds: float, instance_id: str | None = None) -> int:
        """One call of Fly's wait (at most 60 s): 200 when reached, 408 when not yet, 404 when gone."""
        timeout = max(1, min(int(seconds), self.wait_chunk))
        params: dict[str, Any] = {"state": state, "timeout": timeout}
        if instance_id:
            params["instance_id"] = instance_id
        answer = self._call(
            "GET",
            f"/machines/{_q(machine_id)}/wait",
            params=params,
            what=f"wait for the workspace machine to be {state}",
            allow=(404, 408),
            read_timeout=timeout + self.request_timeout,
            quick_retries=0,
        )
        return answer.status

    def _wait_until(self, machine: dict[str, Any], state: str, seconds: float) -> bool:
        """Wait (in Fly-sized chunks) for the machine to reach ``state``; False if it did not in time.
        A machine that is gone counts as destroyed."""
        deadline = time.monotonic() + seconds
        # Fly documents instance_id as required to wait for "stopped".
        instance_id = machine.get("instance_id") if state == "stopped" else None
        while True:
            remaining = deadline - time.monotonic()
            status = self._wait(machine["id"], state, max(1.0, remaining), instance_id)
            if status == 200 or (status == 404 and state == "destroyed"):
                return True
            if status == 404:
                raise DriverError("The workspace machine no longer exists at Fly.")
            if time.monotonic() >= deadline:
                return False

    # --- HTTP ----------------------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        """One pooled client per process (a forked Celery worker must not share its parent's sockets)."""
        with self._client_lock:
            if self._client is None or self._client_pid != os.getpid():
                self._client = httpx.Client(
                    base_url=f"{self.base_url}/v1/apps/{_q(self.app)}",
                    headers={
                        "Authorization": f"Bearer {self.token}",
                        "User-Agent": MANAGED_BY,
                        "Accept": "application/json",
                    },
                    timeout=httpx.Timeout(self.request_timeout, connect=self.connect_timeout),
                )
                self._client_pid = os.getpid()
            return self._client

    def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
        allow: tuple[int, ...] = (),
        read_timeout: float | None = None,
        capacity_subject: str | None = None,
        busy_is_transient: bool = False,
        quick_retries: int | None = None,
    ) -> _Answer:
        """One API call: its 2xx answer (or one of ``allow``), else a DriverError.

        A 429 is retried here while its Retry-After fits ``rate_limit_budget``. Reads and deletes
        (idempotent) are retried at once after a transient failure, ``quick_retries`` times."""
        quick_retries = self.quick_retries if quick_retries is None else quick_retries
        if method not in ("GET", "DELETE"):
            quick_retries = 0  # a create or start whose answer was lost is the caller's to resolve
        timeout = (
            httpx.Timeout(read_timeout, connect=self.connect_timeout)
            if read_timeout is not None
            else httpx.USE_CLIENT_DEFAULT
        )
        rate_limited, waited, failures = 0, 0.0, 0
        while True:
            request_id = None
            try:
                response = self._http().request(method, path, params=params, json=json, timeout=timeout)
            except httpx.TimeoutException:
                error = DriverError(f"Fly did not answer in time when asked to {what}.", transient=True)
                _log_call(method, path, None, None, error.message)
            except httpx.TransportError as exc:
                error = DriverError(
                    f"Could not reach Fly when asked to {what} ({type(exc).__name__}).", transient=True
                )
                _log_call(method, path, None, None, error.message)
            else:
                request_id = response.headers.get("fly-request-id")
                status = response.status_code
                _log_call(method, path, status, request_id)
                if 200 <= status < 300 or status in allow:
                    return _Answer(status, _json(response), request_id)
                if status == 429:
                    delay = _retry_after(response, rate_limited)
                    if rate_limited < self.rate_limit_retries and waited + delay <= self.rate_limit_budget:
                        logger.info("Fly rate limit on %s %s; retrying in %.2f s", method, path, delay)
                        rate_limited += 1
                        waited += delay
                        time.sleep(delay)
                        continue
                    quick_retries = 0  # past the budget: the task's backoff takes over
                error = self._error(
                    response, what, capacity_subject=capacity_subject, busy_is_transient=busy_is_transient
                )
            if error.transient and failures < quick_retries:
                failures += 1
                backoff = min(1.0, self.retry_delay * 2 ** (failures - 1))
                time.sleep(backoff * random.uniform(0.5, 1.0))  # noqa: S311 (jitter, not secrets)
                continue
            error.request_id = error.request_id or request_id
            raise error

    def _error(
        self, response: httpx.Response, what: str, *, capacity_subject: str | None, busy_is_transient: bool
    ) -> DriverError:
        """Fly's refusal, classified, in words the workspace's owner can act on."""
        status = response.status_code
        request_id = response.headers.get("fly-request-id")
        body = _json(response)
        code = body.get("status") if isinstance(body, dict) else None
        words = _words(body, response)

        def error(message: str, transient: bool = False) -> DriverError:
            return DriverError(message, transient=transient, request_id=request_id)

        if status == 408 or status >= 500:
            return error(f"Fly had a problem when asked to {what} (HTTP {status}): {words}", transient=True)
        if status == 429:
            return error(f"Fly is rate-limiting our requests to {what}; it will be retried.", transient=True)
        if status in (403, 409, 412, 422) and (code in _CAPACITY_CODES or _CAPACITY_WORDS.search(words)):
            return error(
                f"Fly has no capacity for {capacity_subject or 'this workspace'} in region {self.region}: {words}"
            )
        if status in (403, 409, 412, 422) and _QUOTA_WORDS.search(words):
            return error(f"Fly refused to {what}: the organization's quota is used up: {words}")
        if status == 401:
            return error(f"Fly rejected our API token (FLY_API_TOKEN) when asked to {what}: {words}")
        field = _field(words)
        if status in (400, 422) and field:
            return error(f"Fly rejected {_FIELDS.get(field, field)} ({field}) when asked to {what}: {words}")
        if status == 412 and busy_is_transient:
            return error(f"Fly could not {what} yet, the machine is changing state: {words}", transient=True)
        return error(f"Fly refused to {what} (HTTP {status}): {words}")

    # --- Values ------------------------------------------------------------------------------------

    def _machine(self, machine: dict[str, Any], request_id: str | None) -> Machine:
        mounts = (machine.get("config") or {}).get("mounts") or []
        return Machine(
            machine_id=machine["id"],
            workspace_id=_metadata(machine).get("workspace_id", ""),
            state=_STATES.get(machine.get("state") or "", MachineState.STARTING),
            private_ip=machine.get("private_ip") or None,
            volume_id=(mounts[0].get("volume") if mounts else None) or None,
            request_id=request_id,
        )

    @staticmethod
    def _check_id(workspace_id: str) -> str:
        # Names and the volume's encoding are built from it: it must be a UUID, as our ids are.
        parsed = parse_uuid(workspace_id)
        if parsed is None:
            raise DriverError(f"{workspace_id!r} is not a usable workspace id for the fly driver.")
        return str(parsed)


def _log_call(method: str, path: str, status: int | None, request_id: str | None, error: str = "") -> None:
    """One line per HTTP call to Fly, with Fly's request id (what Fly's support asks for)."""
    logger.log(
        logging.WARNING if error else logging.INFO,
        "fly %s %s: %s",
        method,
        path,
        status if status is not None else error,
        extra={
            "provider": "fly",
            "http_method": method,
            "http_path": path,
            "http_status": status,
            "fly_request_id": request_id,
        },
    )


def _q(segment: str) -> str:
    return quote(str(segment), safe="")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _machines(data: Any) -> list[dict[str, Any]]:
    return [m for m in data if isinstance(m, dict) and "id" in m] if isinstance(data, list) else []


def _volumes(data: Any) -> list[dict[str, Any]]:
    return [v for v in data if isinstance(v, dict) and "id" in v] if isinstance(data, list) else []


def _metadata(machine: dict[str, Any]) -> dict[str, Any]:
    return (machine.get("config") or {}).get("metadata") or {}


def _words(body: Any, response: httpx.Response) -> str:
    """Fly's own explanation: ``{"error": ...}`` (sometimes ``message``), else the body's text."""
    if isinstance(body, dict):
        for key in ("error", "message"):
            if isinstance(body.get(key), str) and body[key].strip():
                return body[key].strip()
    text = (response.text or "").strip()
    return text[:300] if text else response.reason_phrase or "no explanation given"


def _field(words: str) -> str | None:
    match = _CONFIG_FIELD.search(words)
    if match:
        return match[0]
    match = _VOLUME_FIELD.search(words)
    return match[1] if match else None


def _retry_after(response: httpx.Response, attempt: int) -> float:
    """Seconds to wait before retrying a 429: its Retry-After (seconds or a date), else a backoff."""
    value = (response.headers.get("Retry-After") or "").strip()
    if value:
        try:
            return max(0.05, float(value))
        except ValueError:
            pass
        try:
            return max(0.05, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            pass
    return min(4.0, 0.5 * 2**attempt)


def _guest(hardware: Hardware) -> dict[str, Any]:
    guest: dict[str, Any] = {
        "cpu_kind": hardware.cpu_kind,
        "cpus": hardware.cpus,
        "memory_mb": hardware.memory_mb,
    }
    if hardware.gpu_kind:
        guest.update(gpu_kind=hardware.gpu_kind, gpus=1)
    return guest


def _env(spec: MachineSpec) -> dict[str, str]:
    env = dict(spec.env)
    if spec.repo_url:
        env["WORKSPACE_REPO_URL"] = spec.repo_url
    if spec.branch:
        env["WORKSPACE_REPO_BRANCH"] = spec.branch
    env["WORKSPACE_DIR"] = MOUNT_PATH
    return env


def _hardware_words(hardware: Hardware) -> str:
    cpus = f"{hardware.cpus} {hardware.cpu_kind} CPU{'s' if hardware.cpus != 1 else ''}"
    gpu = f" and a {hardware.gpu_kind} GPU" if hardware.gpu_kind else ""
    return f"{cpus} with {hardware.memory_mb} MB of memory{gpu}"


def _guest_words(machine: dict[str, Any]) -> str:
    guest = (machine.get("config") or {}).get("guest") or {}
    try:
        return _hardware_words(
            Hardware(
                cpu_kind=guest.get("cpu_kind", "shared"),
                cpus=int(guest.get("cpus", 1)),
                memory_mb=int(guest.get("memory_mb", 256)),
                volume_size_gb=0,
                gpu_kind=guest.get("gpu_kind"),
            )
        )
    except (TypeError, ValueError):
        return "this workspace machine"
