"""Machine drivers, chosen by the ``WORKSPACE_DRIVER`` setting."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .base import Driver, DriverError, Machine, MachineSpec, MachineState, Volume

DRIVERS = {
    "local": "workspaces.drivers.local.LocalDriver",
    "fly": "workspaces.drivers.fly.FlyDriver",
}

__all__ = ["Driver", "DriverError", "Machine", "MachineSpec", "MachineState", "Volume", "get_driver"]


@cache
def _driver(name: str) -> Driver:
    if name not in DRIVERS:
        raise ImproperlyConfigured(
            f"WORKSPACE_DRIVER={name!r} is not a known driver; use one of {', '.join(DRIVERS)}."
        )
    return import_string(DRIVERS[name]).from_settings(settings)


def get_driver(name: str | None = None) -> Driver:
    """The configured driver (or the one named), built once per process."""
    return _driver(name or settings.WORKSPACE_DRIVER)
