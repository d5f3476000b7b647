"""``manage.py machines``: two installations (two driver roots) on one host never touch or answer for
each other, even with the same workspace id and the same agent port."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from workspaces.drivers.base import DriverError
from workspaces.drivers.local import PROJECT_ROOT, LocalDriver

from .test_local_driver import DEADLINE, agent_pids, health, is_running, record, spec, wait_until

PORT = int(os.environ.get("LOCAL_DRIVER_AGENT_PORT", "18080")) + 3


def machines(*args: str) -> str:
    out = io.StringIO()
    call_command("machines", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def two(tmp_path: Path):
    """Two checkouts' drivers on this host: same port, same workspace ids."""
    drivers = [LocalDriver(root=tmp_path / name / "var" / "local-machines", port=PORT) for name in ("a", "b")]
    yield drivers
    for driver in drivers:
        for machine in driver.list_machines():
            driver.destroy(machine.workspace_id)
        for pid in agent_pids(driver.root):
            os.killpg(pid, signal.SIGKILL)


def test_each_installation_has_its_own_id_and_addresses(two):
    first, second = two

    assert first.installation != second.installation
    assert first.first_address != second.first_address
    a = first.wait_started(first.create(spec("ws-same")).machine_id, timeout=DEADLINE)
    b = second.wait_started(second.create(spec("ws-same")).machine_id, timeout=DEADLINE)

    assert a.private_ip != b.private_ip
    assert health(a.private_ip, PORT)["installation"] == first.installation
    assert health(b.private_ip, PORT)["installation"] == second.installation


def test_stop_all_and_destroy_touch_only_their_own_installation(two):
    first, second = two
    for driver in two:
        for workspace_id in ("ws-same", "ws-other"):
            driver.wait_started(driver.create(spec(workspace_id)).machine_id, timeout=DEADLINE)
    theirs = {workspace_id: record(second, workspace_id)["pid"] for workspace_id in ("ws-same", "ws-other")}

    listed = machines("list", "--root", str(first.root))
    assert "ws-same" in listed and "ws-other" in listed and "started" in listed

    out = machines("stop", "--all", "--root", str(first.root))

    assert out.splitlines() == ["stopped ws-other", "stopped ws-same"]
    assert agent_pids(first.root) == []
    assert {machine.state for machine in first.list_machines()} == {"stopped"}
    assert all(is_running(pid) for pid in theirs.values())
    assert {machine.state for machine in second.list_machines()} == {"started"}
    assert health(second.find("ws-same").private_ip, PORT)["installation"] == second.installation

    machines("destroy", "ws-same", "--root", str(first.root))

    assert first.find("ws-same") is None
    assert first.find("ws-other") is not None
    assert second.find("ws-same").state == "started"
    assert is_running(theirs["ws-same"])

    machines("destroy", "--all", "--root", str(first.root))

    assert first.list_machines() == []
    assert not (first.root / "volumes" / "ws-other").exists()
    assert all(is_running(pid) for pid in theirs.values())


def test_a_probe_never_takes_another_installations_machine_for_its_own(two):
    first, second = two
    theirs = second.wait_started(second.create(spec("ws-same")).machine_id, timeout=DEADLINE)
    ours = first.create(spec("ws-same"))
    first.stop(ours.machine_id)
    # Say our record names their address (as records made before addresses were per installation
    # did: every checkout started at 127.1.0.1). Our agent cannot bind; theirs answers the probe.
    path = first.root / "machines" / "ws-same" / "machine.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "private_ip": theirs.private_ip}))
    first.start(ours.machine_id)

    with pytest.raises(DriverError) as failure:
        first.wait_started(ours.machine_id, timeout=DEADLINE)

    assert "exited during start-up" in failure.value.message
    wait_until(lambda: first.find("ws-same").state == "failed", "our machine to read as failed")
    assert second.find("ws-same").state == "started"


def test_the_command_refuses_what_it_cannot_mean(two):
    first, _ = two
    with pytest.raises(CommandError, match="needs either --all or one or more workspace ids"):
        machines("stop", "--root", str(first.root))
    with pytest.raises(CommandError, match="No machine of this installation for: ws-nope"):
        machines("destroy", "ws-nope", "--root", str(first.root))


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_clean_stops_its_own_machines_and_only_those(two, tmp_path):
    """`make clean` in a checkout whose var/ holds a running machine, beside another checkout's."""
    checkout = tmp_path / "checkout"
    (checkout / "var").mkdir(parents=True)
    (checkout / "manage.py").symlink_to(PROJECT_ROOT / "manage.py")  # runs this project's code
    ours = LocalDriver(root=checkout / "var" / "local-machines", port=PORT)
    theirs = two[1]
    ours.wait_started(ours.create(spec("ws-same")).machine_id, timeout=DEADLINE)
    theirs.wait_started(theirs.create(spec("ws-same")).machine_id, timeout=DEADLINE)
    their_pid = record(theirs, "ws-same")["pid"]
    assert agent_pids(ours.root)

    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "LOCAL_DRIVER_ROOT")}
    env["VAR_DIR"] = str(checkout / "var")
    # VENV: a folder of the checkout's own (make clean removes it); BIN: the interpreter to use.
    try:
        result = subprocess.run(  # noqa: S603, S607 (make, with our own Makefile)
            ["make", "-s", "-f", str(PROJECT_ROOT / "Makefile"), "clean"]
            + [f"VENV={checkout / 'venv'}", f"BIN={Path(sys.executable).parent}"],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        left = agent_pids(ours.root)
        for pid in left:  # only if make clean failed to stop them
            os.killpg(pid, signal.SIGKILL)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "stopped ws-same" in result.stdout
    assert left == []
    assert not (checkout / "var").exists()
    assert is_running(their_pid)
