"""The fly driver against the fake Fly Machines API (tests/fakes/fly.py), over real HTTP.

No database and no mocks of our own code: every test starts its own fake on a free loopback port
and builds a driver pointing at it. Durations here are upper bounds on polling, never assertions
about speed.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.fakes.fly import DEFAULT_RATE_LIMITS, VOLUME_NAME, FakeFly
from workspaces.drivers.base import DriverError, MachineSpec, MachineState, Volume
from workspaces.drivers.fly import MANAGED_BY, FlyDriver, volume_name, workspace_of_volume
from workspaces.hardware import Hardware

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token"
APP = "workspaces-test"
REGION = "ams"
IMAGE = "registry.example.com/workspace:1"
HARDWARE = Hardware(cpu_kind="shared", cpus=2, memory_mb=1024, volume_size_gb=5)


def make_driver(fake: FakeFly, **options) -> FlyDriver:
    settings = {
        "token": TOKEN,
        "app": APP,
        "region": REGION,
        "image": IMAGE,
        "base_url": fake.url,
        "request_timeout": 5.0,
        "connect_timeout": 2.0,
        "stop_timeout": 10.0,
        "destroy_timeout": 10.0,
    }
    settings.update(options)
    return FlyDriver(**settings)


def spec(workspace_id: str | None = None, **kwargs) -> MachineSpec:
    return MachineSpec(
        workspace_id=workspace_id or str(uuid.uuid4()), hardware=kwargs.pop("hardware", HARDWARE), **kwargs
    )


def api(fake: FakeFly) -> httpx.Client:
    """Fly's API as another client sees it (someone else's process, or an earlier one of ours)."""
    return httpx.Client(base_url=f"{fake.url}/v1/apps/{APP}", headers={"Authorization": f"Bearer {TOKEN}"})


def live(fake: FakeFly) -> tuple[list[dict], list[dict]]:
    inventory = fake.inventory()
    return inventory["machines"], inventory["volumes"]


@pytest.fixture
def fake():
    """The fake without Fly's rate limits (the tests that are about them switch them on)."""
    with FakeFly(default_region=REGION, rate_limits=None) as fake:
        yield fake


@pytest.fixture
def driver(fake):
    driver = make_driver(fake)
    yield driver
    driver.close()


# --- Creating and waiting --------------------------------------------------------------------------


def test_create_then_wait_started_gives_a_started_machine_with_its_ipv6_and_request_id(fake, driver):
    created = driver.create(spec())
    assert created.state in ("created", "starting")
    assert created.request_id == fake.requests_for("create_machine")[-1]["request_id"]

    machine = driver.wait_started(created.machine_id, timeout=20)

    assert machine.state == "started"
    assert machine.machine_id == created.machine_id
    assert machine.volume_id == created.volume_id
    address = ipaddress.ip_address(machine.private_ip)
    assert address.version == 6 and address in ipaddress.ip_network("fdaa::/16")
    assert machine.request_id == fake.requests_for("get_machine")[-1]["request_id"]


def test_the_volume_and_machine_are_made_as_sent(fake, driver):
    workspace_id = str(uuid.uuid4())
    machine = driver.create(
        spec(
            workspace_id,
            repo_url="https://example.com/team/app.git",
            branch="main",
            env={"WORKSPACE_ID": workspace_id, "WORKSPACE_AGENT_TOKEN": "secret"},
        )
    )

    machines, volumes = live(fake)
    assert len(machines) == 1 and len(volumes) == 1
    made, volume = machines[0], volumes[0]
    assert volume["name"] == volume_name(workspace_id)
    assert volume["region"] == REGION and volume["size_gb"] == 5
    assert volume["attached_machine_id"] == made["id"] == machine.machine_id
    assert made["name"] == f"ws-{workspace_id}"
    assert made["region"] == REGION
    config = made["config"]
    assert config["image"] == IMAGE
    assert config["guest"] == {"cpu_kind": "shared", "cpus": 2, "memory_mb": 1024}
    assert config["mounts"] == [{"volume": volume["id"], "path": "/workspace"}]
    assert config["metadata"] == {"workspace_id": workspace_id, "managed_by": MANAGED_BY}
    assert config["env"] == {
        "WORKSPACE_ID": workspace_id,
        "WORKSPACE_AGENT_TOKEN": "secret",
        "WORKSPACE_REPO_URL": "https://example.com/team/app.git",
        "WORKSPACE_REPO_BRANCH": "main",
        "WORKSPACE_DIR": "/workspace",
    }


def test_a_gpu_goes_into_the_guest_config_when_the_deployment_offers_it():
    with FakeFly(default_region=REGION, gpu_kinds=("a10",)) as fake:
        driver = make_driver(fake, gpu_kinds=("a10",))
        hardware = Hardware(
            cpu_kind="performance", cpus=8, memory_mb=32768, volume_size_gb=50, gpu_kind="a10"
        )
        assert driver.check_hardware(hardware) == []
        driver.create(spec(hardware=hardware))
        guest = live(fake)[0][0]["config"]["guest"]
        assert guest == {
            "cpu_kind": "performance",
            "cpus": 8,
            "memory_mb": 32768,
            "gpu_kind": "a10",
            "gpus": 1,
        }


def test_volume_names_fit_flys_rules_and_say_whose_they_are():
    for _ in range(200):
        workspace_id = str(uuid.uuid4())
        name = volume_name(workspace_id)
        assert VOLUME_NAME.fullmatch(name) and re.fullmatch(r"[a-z0-9]{1,30}", name)
        assert workspace_of_volume(name) == workspace_id
    assert workspace_of_volume("data") is None
    assert workspace_of_volume("ws" + "a" * 25 + "b") is None  # the right shape, but not an encoding we make


def test_check_hardware_refuses_what_fly_cannot_offer(driver):
    gpu = Hardware(cpu_kind="performance", cpus=8, memory_mb=32768, volume_size_gb=10, gpu_kind="a100-40gb")
    [problem] = driver.check_hardware(gpu)
    assert (problem.field, problem.code) == ("hardware.gpu_kind", "gpu_unavailable")
    [problem] = driver.check_hardware(
        Hardware(cpu_kind="dedicated", cpus=2, memory_mb=2048, volume_size_gb=1)
    )
    assert (problem.field, problem.code) == ("hardware.cpu_kind", "invalid_cpu_kind")
    assert driver.check_hardware(HARDWARE) == []
    with pytest.raises(DriverError, match="gpu_kind"):
        driver.create(spec(hardware=gpu))


def test_a_workspace_id_must_be_a_uuid(driver):
    with pytest.raises(DriverError, match="not a usable workspace id") as raised:
        driver.find("../etc")
    assert not raised.value.transient


# --- Finding and adopting ---------------------------------------------------------------------------


def test_find_answers_the_workspaces_machine_and_nothing_else(fake, driver):
    workspace_id = str(uuid.uuid4())
    assert driver.find(workspace_id) is None
    created = driver.create(spec(workspace_id))
    found = driver.find(workspace_id)
    assert found.machine_id == created.machine_id
    assert found.workspace_id == workspace_id
    assert found.request_id == fake.requests_for("list_machines")[-1]["request_id"]
    assert driver.find(str(uuid.uuid4())) is None


def test_a_create_whose_answer_was_lost_is_adopted_by_the_retry(fake, driver):
    workspace_id = str(uuid.uuid4())
    fake.set_faults(lost_response_rate=1.0, actions=["create_machine"])
    with pytest.raises(DriverError) as raised:
        driver.create(spec(workspace_id))
    assert raised.value.transient
    machines, volumes = live(fake)
    assert len(machines) == 1 and len(volumes) == 1  # it was made; only its answer was lost

    fake.reset_faults()
    assert driver.find(workspace_id).machine_id == machines[0]["id"]
    adopted = driver.create(spec(workspace_id))

    assert adopted.machine_id == machines[0]["id"]
    assert len(fake.requests_for("create_machine")) == 1  # the retry made nothing
    assert [m["id"] for m in live(fake)[0]] == [machines[0]["id"]]
    assert [v["id"] for v in live(fake)[1]] == [volumes[0]["id"]]


def test_a_volume_whose_answer_was_lost_is_adopted_by_the_retry(fake, driver):
    workspace_id = str(uuid.uuid4())
    fake.set_faults(lost_response_rate=1.0, actions=["create_volume"])
    with pytest.raises(DriverError) as raised:
        driver.create(spec(workspace_id))
    assert raised.value.transient
    [volume] = live(fake)[1]

    fake.reset_faults()
    machine = driver.create(spec(workspace_id))

    machines, volumes = live(fake)
    assert [v["id"] for v in volumes] == [volume["id"]]
    assert machine.volume_id == volume["id"] and len(machines) == 1


def test_a_first_attempt_lists_nothing_and_its_retry_still_adopts_what_it_made(fake, driver):
    """Listing every volume of the app on each create made a burst cost grow with the fleet
    (docs/benchmarks.md). A first attempt has nothing to adopt; a retry looks, and finds."""
    workspace_id = str(uuid.uuid4())
    fake.set_faults(lost_response_rate=1.0, actions=["create_volume"])
    with pytest.raises(DriverError):
        driver.create(spec(workspace_id, first_attempt=True))
    assert fake.requests_for("list_volumes") == [] and fake.requests_for("list_machines") == []
    [volume] = live(fake)[1]

    fake.reset_faults()
    machine = driver.create(spec(workspace_id))  # attempt 2

    assert len(fake.requests_for("list_volumes")) == 1
    assert machine.volume_id == volume["id"] and [v["id"] for v in live(fake)[1]] == [volume["id"]]


def test_duplicates_left_by_an_earlier_race_are_reconciled_by_create(fake, driver):
    workspace_id = str(uuid.uuid4())
    first = driver.create(spec(workspace_id))
    with api(fake) as other:  # a second machine and a spare volume for the same workspace
        other.post(
            "/volumes", json={"name": volume_name(workspace_id), "region": REGION, "size_gb": 5}
        ).raise_for_status()
        other.post(
            "/machines",
            json={
                "region": REGION,
                "config": {
                    "image": IMAGE,
                    "metadata": {"workspace_id": workspace_id, "managed_by": MANAGED_BY},
                },
            },
        ).raise_for_status()

    adopted = driver.create(spec(workspace_id))

    assert adopted.machine_id == first.machine_id  # the oldest is kept
    machines, volumes = live(fake)
    assert all(m["state"] == "destroying" for m in machines if m["id"] != first.machine_id)
    assert [v["id"] for v in volumes] == [first.volume_id]


# --- Start, stop, destroy ------------------------------------------------------------------------------


def test_stop_start_and_destroy_with_its_volume(fake, driver):
    workspace_id = str(uuid.uuid4())
    machine = driver.wait_started(driver.create(spec(workspace_id)).machine_id, timeout=20)

    stopped = driver.stop(machine.machine_id)
    assert stopped.state == "stopped" and stopped.request_id
    assert live(fake)[0][0]["state"] == "stopped"
    assert len(live(fake)[1]) == 1  # the volume survives a stop
    assert driver.stop(machine.machine_id).state == "stopped"  # stopping again is fine
    assert driver.find(workspace_id).state == "stopped"

    assert driver.start(machine.machine_id).state == "starting"
    assert driver.start(machine.machine_id).state in ("starting", "started")  # so is starting again
    again = driver.wait_started(machine.machine_id, timeout=20)
    assert again.state == "started" and again.private_ip == machine.private_ip

    driver.destroy(workspace_id)
    assert live(fake) == ([], [])
    assert driver.find(workspace_id) is None
    driver.destroy(workspace_id)  # destroying what is gone is not an error
    driver.destroy(str(uuid.uuid4()))

    with pytest.raises(DriverError, match="destroyed") as raised:
        driver.start(machine.machine_id)
    assert not raised.value.transient


def test_create_adopts_a_stopped_machine_by_starting_it(fake, driver):
    workspace_id = str(uuid.uuid4())
    machine = driver.wait_started(driver.create(spec(workspace_id)).machine_id, timeout=20)
    driver.stop(machine.machine_id)
    adopted = driver.create(spec(workspace_id))
    assert adopted.machine_id == machine.machine_id and adopted.state == "starting"
    assert driver.wait_started(adopted.machine_id, timeout=20).state == "started"


def test_destroy_removes_a_volume_left_without_a_machine(fake, driver):
    workspace_id = str(uuid.uuid4())
    fake.set_faults(error_5xx_rate=1.0, actions=["create_machine"])
    with pytest.raises(DriverError):
        driver.create(spec(workspace_id))
    assert driver.list_volumes() == [Volume(volume_id=live(fake)[1][0]["id"], workspace_id=workspace_id)]
    fake.reset_faults()
    driver.destroy(workspace_id)
    assert live(fake) == ([], [])


def test_destroy_deletes_only_the_workspaces_own_even_if_fly_ignores_the_metadata_filter(fake, driver):
    """A provider that answers every machine to "?metadata.workspace_id=A" must not make destroying A
    delete B: each machine and volume deleted is checked against the workspace asked about."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    for workspace_id in (a, b):
        driver.wait_started(driver.create(spec(workspace_id)).machine_id, timeout=20)
    b_machine = driver.find(b)
    fake.set_faults(ignore_metadata_filter=True)
    with api(fake) as other:  # the switch is on: the list answers both workspaces' machines
        assert len(other.get("/machines", params={"metadata.workspace_id": a}).json()) == 2

    driver.destroy(a)

    machines, volumes = live(fake)
    assert [(m["id"], m["state"]) for m in machines] == [(b_machine.machine_id, "started")]
    assert [v["name"] for v in volumes] == [volume_name(b)]
    assert driver.find(a) is None
    assert driver.find(b).machine_id == b_machine.machine_id


def test_list_machines_and_volumes_show_ours(fake, driver):
    ours = [str(uuid.uuid4()) for _ in range(2)]
    for workspace_id in ours:
        driver.create(spec(workspace_id))
    orphan = str(uuid.uuid4())
    with api(fake) as other:
        other.post("/volumes", json={"name": volume_name(orphan), "region": REGION}).raise_for_status()
        foreign = other.post("/volumes", json={"name": "data", "region": REGION}).json()
        other.post(
            "/machines", json={"config": {"image": "nginx", "metadata": {"role": "web"}}}
        ).raise_for_status()

    machines = driver.list_machines()
    assert sorted(m.workspace_id for m in machines) == sorted(ours)
    assert all(isinstance(m.state, MachineState) for m in machines)
    volumes = {v.volume_id: v.workspace_id for v in driver.list_volumes()}
    assert sorted(w for w in volumes.values() if w) == sorted([*ours, orphan])
    assert volumes[foreign["id"]] is None


# --- Fly's answers, classified -----------------------------------------------------------------------


def test_a_429_waits_for_its_retry_after_and_then_goes_ahead():
    # Fly's own limits: list is one action, 1 request/s with bursts of 3.
    with FakeFly(default_region=REGION, rate_limits=DEFAULT_RATE_LIMITS) as fake:
        driver = make_driver(fake)
        for _ in range(4):
            driver.find(str(uuid.uuid4()))
        lists = fake.requests_for("list_machines")
    [limited] = [r for r in lists if r["status"] == 429]
    after = lists[lists.index(limited) + 1]
    assert after["status"] == 200
    assert after["at"] - limited["at"] >= 1.0 - 0.05  # its Retry-After: 1 was honoured


def test_a_429_that_keeps_coming_is_a_transient_error_with_the_request_id(fake):
    driver = make_driver(fake, rate_limit_retries=2)
    fake.set_faults(rate_limit_rate=1.0, retry_after_seconds=0)
    with pytest.raises(DriverError) as raised:
        driver.find(str(uuid.uuid4()))
    assert raised.value.transient
    lists = fake.requests_for("list_machines")
    assert len(lists) == 1 + 2  # the request and its 2 rate-limit retries, nothing more
    assert raised.value.request_id == lists[-1]["request_id"]


def test_a_retry_after_beyond_the_budget_is_left_to_the_task_retry(fake, driver):
    fake.set_faults(rate_limit_rate=1.0, retry_after_seconds=600, actions=["create_volume"])
    with pytest.raises(DriverError, match="rate-limiting") as raised:
        driver.create(spec())
    assert raised.value.transient
    assert len(fake.requests_for("create_volume")) == 1


def test_5xx_is_transient_and_a_create_is_not_retried_inside_the_call(fake, driver):
    fake.set_faults(error_5xx_rate=1.0, actions=["create_machine"])
    with pytest.raises(DriverError) as raised:
        driver.create(spec())
    assert raised.value.transient
    assert re.search(r"HTTP 50[023]", raised.value.message)
    assert raised.value.request_id == fake.requests_for("create_machine")[-1]["request_id"]
    assert len(fake.requests_for("create_machine")) == 1

    fake.set_faults(actions=["list_machines"])
    with pytest.raises(DriverError) as raised:
        driver.find(str(uuid.uuid4()))
    assert raised.value.transient
    assert len(fake.requests_for("list_machines")) == 1 + driver.quick_retries + 1  # 1 earlier, in create


def test_a_timeout_is_transient(fake):
    driver = make_driver(fake, request_timeout=0.3)
    fake.set_faults(timeout_rate=1.0, hang_seconds=2.0)
    with pytest.raises(DriverError, match="did not answer in time") as raised:
        driver.find(str(uuid.uuid4()))
    assert raised.value.transient
    assert live(fake) == ([], [])


def test_no_capacity_is_a_permanent_readable_error_and_leaves_nothing_behind(fake, driver):
    big = Hardware(cpu_kind="performance", cpus=8, memory_mb=16384, volume_size_gb=20)
    fake.set_faults(capacity_rate=1.0, actions=["create_machine"])
    statuses = set()
    for _ in range(6):  # the fake answers as flyd (409) and as flaps (422 insufficient_capacity) do
        with pytest.raises(DriverError) as raised:
            driver.create(spec(hardware=big))
        error = raised.value
        assert not error.transient
        assert error.message.startswith(
            "Fly has no capacity for 8 performance CPUs with 16384 MB of memory in region ams: "
        )
        assert "insufficient" in error.message  # their words
        assert error.request_id == fake.requests_for("create_machine")[-1]["request_id"]
        statuses.add(fake.requests_for("create_machine")[-1]["status"])
        assert live(fake) == ([], [])  # the volume made for it was deleted
    assert statuses == {409, 422}

    fake.set_faults(actions=["create_volume"])
    with pytest.raises(DriverError) as raised:
        driver.create(spec(hardware=big))
    assert (
        raised.value.message == "Fly has no capacity for a 20 GB volume in region ams: aborted: no capacity"
    )


@pytest.mark.parametrize(
    ("hardware", "ours", "theirs"),
    [
        (Hardware("shared", 1, 4096, 1), "hardware.memory_mb", "config.guest.memory_mb"),
        (Hardware("performance", 3, 8192, 1), "hardware.cpus", "config.guest.cpus"),
        (Hardware("shared", 1, 256, 501), "hardware.volume_size_gb", "size_gb"),
    ],
)
def test_an_invalid_config_is_a_permanent_error_naming_the_field(fake, driver, hardware, ours, theirs):
    with pytest.raises(DriverError) as raised:
        driver.create(spec(hardware=hardware))
    assert not raised.value.transient
    assert f"Fly rejected {ours} ({theirs})" in raised.value.message
    assert raised.value.request_id
    assert live(fake) == ([], [])


def test_a_wrong_token_is_a_permanent_error_naming_the_setting(fake):
    driver = make_driver(fake, token="wrong")
    with pytest.raises(DriverError, match="FLY_API_TOKEN") as raised:
        driver.find(str(uuid.uuid4()))
    assert not raised.value.transient


# --- Waiting under our own deadline ----------------------------------------------------------------------


def test_a_machine_that_never_starts_fails_at_our_deadline_not_theirs(fake, driver):
    fake.set_faults(never_start=True)
    machine = driver.create(spec())
    with pytest.raises(DriverError, match=r"did not start within 2\.5 s") as raised:
        driver.wait_started(machine.machine_id, timeout=2.5)
    assert not raised.value.transient
    waits = fake.requests_for("wait_machine")
    assert waits and all(int(w["query"]["timeout"][0]) <= 2 for w in waits)


def test_waiting_goes_on_in_chunks_until_the_machine_starts():
    with FakeFly(default_region=REGION, start_delay=2.5) as fake:
        driver = make_driver(fake, wait_chunk=1)
        machine = driver.wait_started(driver.create(spec()).machine_id, timeout=30)
        assert machine.state == "started"
        waits = fake.requests_for("wait_machine")
        assert len(waits) >= 2
        assert all(w["query"]["timeout"] == ["1"] and w["query"]["state"] == ["started"] for w in waits)


# --- Settings and start-up -------------------------------------------------------------------------------


def test_from_settings_names_every_missing_setting():
    settings = SimpleNamespace(
        FLY_API_TOKEN="", FLY_APP_NAME="app", FLY_REGION="", FLY_IMAGE="", FLY_API_BASE_URL=""
    )
    with pytest.raises(ImproperlyConfigured) as raised:
        FlyDriver.from_settings(settings)
    message = str(raised.value)
    assert message.startswith("WORKSPACE_DRIVER=fly needs FLY_API_TOKEN, FLY_REGION, FLY_IMAGE")
    assert "FLY_APP_NAME" not in message

    settings = SimpleNamespace(
        FLY_API_TOKEN="t", FLY_APP_NAME="app", FLY_REGION="ams", FLY_IMAGE="i", FLY_API_BASE_URL=""
    )
    driver = FlyDriver.from_settings(settings)
    assert (driver.base_url, driver.app, driver.region) == ("https://api.machines.dev", "app", "ams")


def _manage_check(tmp_path, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("FLY_", "DJANGO_SETTINGS"))}
    environment.update(VAR_DIR=str(tmp_path), WORKSPACE_DRIVER="fly", **env)
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_start_up_fails_naming_the_missing_setting(tmp_path):
    result = _manage_check(tmp_path, FLY_APP_NAME="app", FLY_REGION="ams", FLY_IMAGE="image")
    assert result.returncode != 0
    assert "ImproperlyConfigured: WORKSPACE_DRIVER=fly needs FLY_API_TOKEN:" in result.stderr


def test_start_up_with_every_setting_makes_no_call_to_fly(tmp_path):
    # Nothing listens on port 9: a call at start-up would fail the command.
    result = _manage_check(
        tmp_path,
        FLY_API_TOKEN="x",
        FLY_APP_NAME="app",
        FLY_REGION="ams",
        FLY_IMAGE="image",
        FLY_API_BASE_URL="http://127.0.0.1:9",
    )
    assert result.returncode == 0, result.stderr


# --- The fake itself -------------------------------------------------------------------------------------


def test_the_fake_is_switched_over_http_and_runs_on_its_own(tmp_path):
    with socket_port() as port:
        pass
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.fly", "--port", str(port), "--no-rate-limits"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first
        settings_line = process.stdout.readline() + process.stdout.readline()
        assert f"FLY_API_BASE_URL=http://127.0.0.1:{port}" in settings_line
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert (
                client.post("/__fake__/faults", json={"error_5xx_rate": 1.0}).json()["error_5xx_rate"] == 1.0
            )
            answer = client.get(f"/v1/apps/{APP}/machines", headers={"Authorization": "Bearer x"})
            assert answer.status_code in (500, 502, 503) and answer.headers["fly-request-id"]
            assert client.post("/__fake__/faults", json={"no_such_fault": 1}).status_code == 400
            client.delete("/__fake__/faults")
            assert client.get(f"/v1/apps/{APP}/machines", headers={"Authorization": "Bearer x"}).json() == []
            assert client.get("/__fake__/inventory").json() == {"machines": [], "volumes": []}
    finally:
        process.terminate()
        process.wait(timeout=10)


class socket_port:
    """A free loopback port (closed again before use)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.sock.close()


# --- Many workspaces, many faults ----------------------------------------------------------------------------

FAULTS = {
    "5xx": {"error_5xx_rate": 0.3},
    "429": {"rate_limit_rate": 0.3},
    "timeout": {"timeout_rate": 0.3},
    "capacity": {"capacity_rate": 0.3},
    "lost response": {"lost_response_rate": 0.3},
    "all kinds, 30% in all": {
        "error_5xx_rate": 0.06,
        "rate_limit_rate": 0.06,
        "timeout_rate": 0.06,
        "capacity_rate": 0.06,
        "lost_response_rate": 0.06,
    },
}


def _until_done(action, what: str, *, permanent=None, attempts: int = 100):
    """Run ``action`` again after each transient DriverError, as the Celery task would."""
    for _ in range(attempts):
        try:
            return action()
        except DriverError as exc:
            if not exc.transient:
                if permanent is None:
                    raise
                permanent(exc)
    raise AssertionError(f"{what} never succeeded")


@pytest.mark.parametrize("faults", FAULTS.values(), ids=FAULTS.keys())
def test_under_faults_every_workspace_ends_with_one_machine_and_one_volume(faults):
    with FakeFly(default_region=REGION, seed=7, rate_limits=None, start_delay=0.01, stop_delay=0.01) as fake:
        driver = make_driver(fake, request_timeout=0.1, connect_timeout=0.5, retry_delay=0.01)
        workspaces = [str(uuid.uuid4()) for _ in range(20)]
        fake.set_faults(retry_after_seconds=0, hang_seconds=0.15, **faults)

        for workspace_id in workspaces:

            def capacity(exc: DriverError, workspace_id=workspace_id) -> None:
                # What provisioning does with a permanent error: the workspace goes to `error` and
                # what was made is destroyed; its owner then starts it again.
                assert exc.message.startswith("Fly has no capacity for "), exc.message
                _until_done(lambda: driver.destroy(workspace_id), "destroy")

            def provision(workspace_id=workspace_id):
                machine = driver.find(workspace_id)
                if machine is None:
                    machine = driver.create(spec(workspace_id))
                elif machine.state in ("stopped", "failed"):
                    machine = driver.start(machine.machine_id)
                return driver.wait_started(machine.machine_id, timeout=10)

            _until_done(provision, f"provisioning {workspace_id}", permanent=capacity)

        faulted = [r for r in fake.requests if r.get("status") not in (200,)]
        assert faulted, "no fault was injected"
        machines, volumes = live(fake)
        assert sorted(m["config"]["metadata"]["workspace_id"] for m in machines) == sorted(workspaces)
        assert sorted(workspace_of_volume(v["name"]) for v in volumes) == sorted(workspaces)
        by_volume = {v["id"]: v for v in volumes}
        for machine in machines:
            [mount] = machine["config"]["mounts"]
            volume = by_volume[mount["volume"]]
            assert workspace_of_volume(volume["name"]) == machine["config"]["metadata"]["workspace_id"]
            assert volume["attached_machine_id"] == machine["id"]
            assert machine["state"] == "started"

        for workspace_id in workspaces:
            _until_done(lambda workspace_id=workspace_id: driver.destroy(workspace_id), "destroy")
        assert live(fake) == ([], [])
