"""The hardware catalogue and its rules (docs/api.md, "Hardware").

A leaf module: it imports no models and nothing of the workspaces app, so that workspace creation,
user settings (``accounts``, an app below this one) and the drivers' capability checks can all use
it without an import cycle. Every rule failure is a ``Problem`` with
a stable code and what would have been ``allowed``, so that a caller can fix the request without
reading our documentation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from django.conf import settings

from config.api.errors import ValidationFailed

FIELDS = ("cpu_kind", "cpus", "memory_mb", "volume_size_gb", "gpu_kind")


@dataclass(frozen=True)
class Hardware:
    """A complete hardware choice. Field names are Fly's guest config names."""

    cpu_kind: str
    cpus: int
    memory_mb: int
    volume_size_gb: int
    gpu_kind: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        gpu = f" / {self.gpu_kind}" if self.gpu_kind else ""
        return f"{self.cpus}×{self.cpu_kind} / {self.memory_mb / 1024:g} GB / {self.volume_size_gb} GB{gpu}"


@dataclass(frozen=True)
class Problem:
    """One reason a request is invalid, in the shape of an error's ``details`` entry."""

    field: str
    code: str
    message: str
    allowed: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"field": self.field, "code": self.code, "message": self.message}
        if self.allowed is not None:
            detail["allowed"] = self.allowed
        return detail


def merge(defaults: Hardware, partial: dict[str, Any] | None) -> Hardware:
    """The caller's defaults with whatever fields ``partial`` gives laid over them."""
    values = defaults.as_dict()
    values.update({key: value for key, value in (partial or {}).items() if key in FIELDS})
    return Hardware(**values)


def validate(hardware: Hardware, catalogue: dict[str, Any], *, prefix: str = "hardware") -> list[Problem]:
    """Every rule of the catalogue that ``hardware`` breaks (an empty list when it is valid)."""
    problems: list[Problem] = []
    kinds: dict[str, Any] = catalogue["cpu_kinds"]
    kind = kinds.get(hardware.cpu_kind)

    if kind is None:
        problems.append(
            Problem(
                f"{prefix}.cpu_kind",
                "invalid_cpu_kind",
                f"cpu_kind must be one of {', '.join(kinds)}; got {hardware.cpu_kind!r}.",
                {"choices": list(kinds)},
            )
        )
    elif hardware.cpus not in kind["cpus"]:
        problems.append(
            Problem(
                f"{prefix}.cpus",
                "invalid_cpus",
                f"cpus must be one of {', '.join(map(str, kind['cpus']))} for cpu_kind "
                f"{hardware.cpu_kind!r}; got {hardware.cpus}.",
                {"choices": list(kind["cpus"])},
            )
        )
    else:
        problems.extend(_memory_problems(hardware, kind, prefix))

    low, high = catalogue["volume_size_gb"]
    if not low <= hardware.volume_size_gb <= high:
        problems.append(
            Problem(
                f"{prefix}.volume_size_gb",
                "invalid_volume_size",
                f"volume_size_gb must be between {low} and {high}; got {hardware.volume_size_gb}.",
                {"min": low, "max": high},
            )
        )

    if hardware.gpu_kind is not None:
        gpu_kinds = list(catalogue.get("gpu_kinds", []))
        if hardware.gpu_kind not in gpu_kinds:
            offered = (
                f"one of {', '.join(gpu_kinds)} or null"
                if gpu_kinds
                else "null: this deployment offers no GPUs"
            )
            problems.append(
                Problem(
                    f"{prefix}.gpu_kind",
                    "gpu_unavailable",
                    f"gpu_kind {hardware.gpu_kind!r} is not available; it must be {offered}.",
                    {"choices": gpu_kinds},
                )
            )
        elif hardware.cpu_kind != "performance":
            problems.append(
                Problem(
                    f"{prefix}.cpu_kind",
                    "invalid_cpu_kind",
                    f"A GPU needs cpu_kind 'performance'; got {hardware.cpu_kind!r}.",
                    {"choices": ["performance"]},
                )
            )
    return problems


def _memory_problems(hardware: Hardware, kind: dict[str, Any], prefix: str) -> list[Problem]:
    per_cpu_low, per_cpu_high = kind["memory_per_cpu_mb"]
    step = kind["memory_step_mb"]
    low, high = per_cpu_low * hardware.cpus, per_cpu_high * hardware.cpus
    allowed = {"min": low, "max": high, "step": step}
    where = f"{hardware.cpus} {hardware.cpu_kind} CPU{'s' if hardware.cpus != 1 else ''}"
    field = f"{prefix}.memory_mb"
    if hardware.memory_mb < low:
        return [
            Problem(
                field,
                "memory_too_low",
                f"memory_mb must be at least {low} for {where}; got {hardware.memory_mb}.",
                allowed,
            )
        ]
    if hardware.memory_mb > high:
        return [
            Problem(
                field,
                "memory_too_high",
                f"memory_mb must be at most {high} for {where}; got {hardware.memory_mb}.",
                allowed,
            )
        ]
    if hardware.memory_mb % step:
        return [
            Problem(
                field,
                "invalid_memory_step",
                f"memory_mb must be a multiple of {step} for {hardware.cpu_kind!r} CPUs; got {hardware.memory_mb}.",
                allowed,
            )
        ]
    return []


# --- the one check of a complete choice: the catalogue's rules, then what the driver can offer -------

CapabilityCheck = Callable[[Hardware], list[Problem]]
_capability_check: CapabilityCheck | None = None


def set_capability_check(capability_check: CapabilityCheck) -> None:
    """Install what the deployment's provider can offer, as a check (``Driver.check_hardware`` of
    the configured driver). The workspaces app does it at start-up (``WorkspacesConfig.ready``):
    the drivers import projects' modules, so ``accounts`` could not import them without pointing
    its imports up; through this hook it checks a user's default hardware exactly as a create does
    while importing nothing but this leaf."""
    global _capability_check
    _capability_check = capability_check


def check(hardware: Hardware, *, prefix: str = "hardware") -> None:
    """The one check of a complete hardware choice, for workspace creation and for users' default
    hardware alike: every rule of the catalogue (``WORKSPACE_HARDWARE_CATALOGUE``), then what the
    driver can offer. Raises ``ValidationFailed`` with one detail per problem, its field under
    ``prefix``."""
    if _capability_check is None:  # the workspaces app is not loaded: refuse rather than skip
        raise RuntimeError("No capability check installed: is the workspaces app in INSTALLED_APPS?")
    problems = validate(hardware, settings.WORKSPACE_HARDWARE_CATALOGUE, prefix=prefix)
    if not problems:
        problems = [_under(problem, prefix) for problem in _capability_check(hardware)]
    if problems:
        raise ValidationFailed.from_details([p.as_dict() for p in problems])


def _under(problem: Problem, prefix: str) -> Problem:
    """A driver names fields as a create request does (``hardware.gpu_kind``): move it under ``prefix``."""
    head, dot, rest = problem.field.partition(".")
    if head != "hardware" or prefix == "hardware":
        return problem
    return replace(problem, field=f"{prefix}{dot}{rest}")
