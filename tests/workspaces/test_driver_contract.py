"""The driver interface's typed seams (workspaces/drivers/base.py), held by both drivers."""

import inspect

import pytest
from django.utils.module_loading import import_string

from workspaces.drivers import DRIVERS, Driver, MachineState


def test_every_driver_declares_from_settings_and_a_driver_without_it_cannot_be_made():
    assert "from_settings" in Driver.__abstractmethods__
    for path in DRIVERS.values():
        driver_class = import_string(path)
        assert not inspect.isabstract(driver_class), path

    class Incomplete(Driver):
        def find(self, workspace_id): ...
        def create(self, spec): ...
        def wait_started(self, machine_id, *, timeout): ...
        def start(self, machine_id): ...
        def stop(self, machine_id): ...
        def destroy(self, workspace_id, *, keep_machine_id=None): ...
        def list_machines(self): ...

    with pytest.raises(TypeError, match="from_settings"):
        Incomplete()


def test_machine_states_are_an_enum_that_still_compares_as_the_documented_strings():
    assert [s.value for s in MachineState] == [
        "created",
        "starting",
        "started",
        "stopped",
        "failed",
        "destroyed",
    ]
    assert MachineState.STARTED == "started" and f"{MachineState.STOPPED}" == "stopped"
