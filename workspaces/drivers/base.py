"""The one interface every machine provider sits behind.

A driver knows nothing of our models or database: it is given plain values (``MachineSpec``) and
answers with plain values (``Machine``). Services decide what to do with them. Every provider
resource is named and tagged after the workspace id, so that ``find`` can adopt what an earlier,
interrupted attempt created instead of creating a second machine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

from projects.redaction import redact_credentials
from workspaces.hardware import Hardware, Problem


@dataclass(frozen=True)
class MachineSpec:
    """What to provision for one workspace."""

    workspace_id: str
    hardware: Hardware
    repo_url: str | None = None
    branch: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    # No earlier run of this provisioning exists (attempt 1): nothing of it can be at the provider
    # yet, so the driver need not look for an earlier attempt's leftovers to adopt. On Fly that look
    # lists every volume of the app, which a burst of creates would pay for each workspace.
    first_attempt: bool = False


class MachineState(StrEnum):
    """What a machine is doing, in our words; each driver maps its provider's states onto these.
    A ``str``, so ``machine.state == "started"`` holds too."""

    CREATED = "created"  # accepted, not booting yet
    STARTING = "starting"
    STARTED = "started"  # up and reachable
    STOPPED = "stopped"  # its volume is kept
    FAILED = "failed"  # it crashed or never came up; ``start`` may revive it
    DESTROYED = "destroyed"


@dataclass(frozen=True)
class Machine:
    """A provider's machine as the driver sees it now."""

    machine_id: str
    workspace_id: str
    state: MachineState
    private_ip: str | None = None
    volume_id: str | None = None
    git_ref: str | None = None
    # The provider's id for the request that produced this answer (Fly's ``fly-request-id``), so
    # that an operator can quote it to the provider. None where the provider has no such thing.
    request_id: str | None = None


@dataclass(frozen=True)
class Volume:
    """A provider's volume, where volumes can outlive machines (``Driver.list_volumes``)."""

    volume_id: str
    # Its workspace's id, or None if the volume is not ours (no workspace tag).
    workspace_id: str | None


class DriverError(Exception):
    """A provider call failed. ``transient`` errors are worth retrying; the others are final.

    ``message`` is written for the workspace's owner: it becomes the workspace's ``error_message``,
    its events and the logs, so any repository credential in it (a provider or git quoting the URL)
    is masked here, once for every driver.
    """

    def __init__(self, message: str, *, transient: bool = False, request_id: str | None = None):
        message = redact_credentials(message)
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.request_id = request_id


class Driver(ABC):
    """A machine provider. Methods are idempotent where the provider allows it."""

    name: str = ""
    # Whether ``create`` clones the project's repository on this host, in the worker (the local
    # driver), rather than inside the machine (Fly's image clones at boot). Such provisioning runs go
    # to WORKSPACE_CLONE_QUEUE, so that a hanging repository cannot hold the other workers' slots.
    clones_on_host: bool = False

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Any) -> Self:
        """The driver configured from Django's settings (``get_driver`` builds drivers so). A
        required setting that is missing raises ``ImproperlyConfigured`` naming every such setting,
        so a misconfigured deployment fails at its first use with a message an operator can act on."""

    def check_hardware(self, hardware: Hardware) -> list[Problem]:
        """What this provider cannot offer, found before anything is created (e.g. a GPU)."""
        return []

    @abstractmethod
    def find(self, workspace_id: str) -> Machine | None:
        """The machine an earlier attempt made for this workspace, if any."""

    @abstractmethod
    def create(self, spec: MachineSpec) -> Machine:
        """Create the volume and the machine mounting it, and boot it. Returns once the provider
        has accepted the machine; it may still be starting. On failure nothing is left behind."""

    @abstractmethod
    def wait_started(self, machine_id: str, *, timeout: float) -> Machine:
        """Block until the machine is up and reachable (state ``started``), or raise."""

    @abstractmethod
    def start(self, machine_id: str) -> Machine:
        """Boot a stopped machine (its volume is kept)."""

    @abstractmethod
    def stop(self, machine_id: str) -> Machine:
        """Stop a machine; its volume survives."""

    @abstractmethod
    def destroy(self, workspace_id: str, *, keep_machine_id: str | None = None) -> None:
        """Destroy the workspace's machine and volume. Destroying what is already gone is not an error.

        With ``keep_machine_id``: destroy every *other* machine of the workspace and every volume
        but the one that machine mounts, the leftovers of a duplicated provisioning, keeping the
        workspace's own machine and its data."""

    @abstractmethod
    def list_machines(self) -> list[Machine]:
        """Every machine this driver manages: its inventory, for reconciliation."""

    def list_volumes(self) -> list[Volume]:
        """Every volume, where volumes can outlive machines. The local driver's volumes live and die
        with its machines: none."""
        return []
