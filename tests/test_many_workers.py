"""Many workers at once (issue 8): several Celery worker processes and two web processes on one
database and one broker, hundreds of workspaces created over HTTP and provisioned through the fly
driver against the fake Fly Machines API, and each of them provisioned exactly once: one volume, one
machine, one successful attempt, by whichever worker took it, with every worker doing its share.

The processes are what a deployment runs (tests/live.py): gunicorn and ``celery worker``, on the
test database and a queue of their own. The fake adds a little latency to every call so that the
workers' provisioning overlaps.
"""

from __future__ import annotations

import json
import re
import signal
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from config.celery import app as celery_app
from tests.conftest import database_url_for_processes
from tests.factories import ProjectFactory, UserFactory, make_token
from tests.live import LiveStack
from workspaces import reconciler
from workspaces.drivers.fly import workspace_of_volume
from workspaces.models import Workspace, WorkspaceEvent
from workspaces.tasks import provision_workspace

pytestmark = pytest.mark.worker

SMALL = {"hardware": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256, "volume_size_gb": 1}}
USERS = 10  # each with two projects: the creates contend on ten users' quota locks, not one
# Room for every user's share (the default quota is 20 workspaces and 32 CPUs per user).
QUOTA = {"max_workspaces": 100, "max_vcpus": 100, "max_memory_mb": 131072, "max_volume_gb": 1000}
# Three solo workers (one task at a time each) and one prefork worker with two children: the two
# pools a deployment may run, all taking from the same queue.
WORKERS = [{}, {}, {}, {"pool": "prefork", "concurrency": 2}]
TASK_DONE = re.compile(r"Task workspaces\.tasks\.provision_workspace\[([0-9a-f-]{36})\] succeeded")
TASK_TAKEN = re.compile(r"Task workspaces\.tasks\.provision_workspace\[([0-9a-f-]{36})\] received")


# The same count on both backends: SQLite takes every write of every process in turn, and keeps up.
COUNT = 300
DUPLICATED = 100  # workspaces whose provisioning message is sent twice
KILLED = 60  # workspaces provisioned while a worker is killed


@pytest.fixture
def fly(fake_fly, settings):
    """The fake, clean, with a little latency on every call; forgotten again afterwards."""
    settings.WORKSPACE_DRIVER = "fly"
    fake_fly.reset()
    fake_fly.set_faults(latency_ms=30)
    yield fake_fly
    fake_fly.reset()


@pytest.fixture
def accounts(transactional_db):
    """Users, each with a token and two projects, committed so that the web processes see them."""
    made = []
    for _ in range(USERS):
        user = UserFactory()
        made.append((make_token(user), [ProjectFactory(owner=user), ProjectFactory(owner=user)]))
    return made


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """Two web processes and four workers, shared by this module's tests (each waits until all its
    work is done, so none is left for the next)."""
    with django_db_blocker.unblock():
        database_url = database_url_for_processes()
    with LiveStack(
        database_url=database_url,
        log_dir=tmp_path_factory.mktemp("many-workers"),
        queue=f"many-workers-{uuid.uuid4().hex[:8]}",
        env={"WORKSPACE_DRIVER": "fly", "WORKSPACE_QUOTA_DEFAULTS": json.dumps(QUOTA)},
        web=2,
        workers=WORKERS,
    ) as stack:
        yield stack


def create_all(stack, accounts, count, then=None):
    """``count`` creates over HTTP, from eight threads, spread over both web processes, every user
    and every project; ``then(workspace id)`` after each. Returns {workspace id: its owner's token}."""
    plan = []
    for n in range(count):
        token, projects = accounts[n % len(accounts)]
        plan.append((stack.urls[n % len(stack.urls)], token, projects[(n // len(accounts)) % 2]))

    def create(step):
        url, token, project = step
        response = client.post(
            f"{url}/projects/{project.id}/workspaces",
            json=SMALL,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201, f"{url}: {response.status_code} {response.text}"
        if then is not None:
            then(response.json()["id"])
        return response.json()["id"], token

    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(create, plan))


def wait_until_running(stack, accounts, ids, timeout=300):
    """Every workspace's body as its owner lists it, once all are ``running``; a clear failure with
    the counts by status and the processes' logs if they are not by the deadline."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=60) as client:
        while True:
            bodies = {}
            for n, (token, _) in enumerate(accounts):
                url = stack.urls[n % len(stack.urls)]
                response = client.get(f"{url}/workspaces", headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 200, response.text
                bodies.update({w["id"]: w for w in response.json()["workspaces"]})
            statuses = Counter(bodies[i]["status"] if i in bodies else "missing" for i in ids)
            if statuses["running"] == len(ids):
                return bodies
            if time.monotonic() > deadline or statuses.keys() & {"error", "missing"}:
                errors = [
                    bodies[i]["error_message"] for i in ids if bodies.get(i, {}).get("status") == "error"
                ]
                pytest.fail(
                    f"not all {len(ids)} workspaces running: {dict(statuses)}; errors: {errors[:5]}\n"
                    f"{stack.logs()}"
                )
            time.sleep(0.5)


def assert_each_provisioned_exactly_once(fly, ids, bodies, abandoned=frozenset()):
    """One volume and one machine made per workspace (nothing made twice and cleaned up after), and
    on each workspace's timeline one provisioning attempt, which succeeded (after one that never
    finished, for the ``abandoned``: their worker was killed), and one pass through each status on
    the way to running. Returns each workspace's successful attempt."""
    count = len(ids)
    requests = Counter((r["action"], r["status"]) for r in fly.requests)
    assert requests[("create_volume", 200)] == count, requests
    assert requests[("create_machine", 200)] == count, requests
    assert not [r for r in fly.requests if r["action"] in ("delete_machine", "delete_volume")]
    assert not [r for r in fly.requests if r["status"] != 200], requests

    machines = defaultdict(list)
    for machine in list(fly.machines.values()):  # destroyed ones too: every machine ever made
        machines[machine["config"]["metadata"]["workspace_id"]].append(machine)
    volumes = defaultdict(list)
    for volume in list(fly.volumes.values()):
        volumes[workspace_of_volume(volume["name"])].append(volume)
    assert set(machines) == set(ids) == set(volumes)
    for workspace_id in ids:
        (machine,), (volume,) = machines[workspace_id], volumes[workspace_id]
        assert machine["state"] == "started"
        assert bodies[workspace_id]["machine_id"] == machine["id"]
        assert volume["attached_machine_id"] == machine["id"]
    assert len({bodies[i]["machine_id"] for i in ids}) == count

    attempts = defaultdict(list)
    for event in WorkspaceEvent.objects.filter(workspace__in=ids, kind=WorkspaceEvent.Kind.ATTEMPT):
        attempts[str(event.workspace_id)].append(event)
    for workspace_id in ids:
        if workspace_id in abandoned:
            dead, *attempts[workspace_id] = sorted(attempts[workspace_id], key=lambda e: e.pk)
            assert dead.message == "Provision attempt 1 never finished.", dead.message
        (event,) = attempts[workspace_id]
        assert event.operation == "provision"
        assert event.duration_ms is not None and not event.error, event.message
        assert event.message == f"Provision attempt {2 if workspace_id in abandoned else 1} succeeded."
    moves = Counter(
        WorkspaceEvent.objects.filter(workspace__in=ids, kind=WorkspaceEvent.Kind.STATUS).values_list(
            "from_status", "to_status"
        )
    )
    assert moves == {
        (None, "creating"): count,
        ("creating", "starting"): count,
        ("starting", "running"): count,
    }
    assert Workspace.objects.filter(pk__in=ids, status="running").count() == count
    return {workspace_id: event for workspace_id, (event,) in attempts.items()}


def test_hundreds_of_workspaces_each_provisioned_exactly_once(stack, accounts, fly):
    count = COUNT
    ids = create_all(stack, accounts, count)
    assert len(ids) == count  # every create answered 201 with a workspace of its own
    bodies = wait_until_running(stack, accounts, ids)
    attempts = assert_each_provisioned_exactly_once(fly, ids, bodies)

    # Every worker process did some of the work: each attempt's task id is in exactly one worker's log.
    done_by = {}
    for worker in stack.workers:
        for task_id in TASK_DONE.findall(worker.log()):
            assert task_id not in done_by, f"task {task_id} ran in {done_by[task_id]} and {worker.name}"
            done_by[task_id] = worker.name
    shares = Counter(done_by[attempts[i].task_id] for i in ids)
    assert set(shares) == {worker.name for worker in stack.workers}, shares


def test_every_message_delivered_twice_still_provisions_each_once(stack, accounts, fly):
    """A second provisioning message for every workspace, right behind the first, as when the
    reconciler queues work again behind a long backlog or the broker redelivers: two workers take
    the pair at once, and the second run stands down (workspaces/attempts.py)."""
    ids = create_all(
        stack,
        accounts,
        DUPLICATED,
        then=lambda workspace_id: provision_workspace.apply_async((workspace_id,), queue=stack.queue),
    )
    bodies = wait_until_running(stack, accounts, ids)
    assert_each_provisioned_exactly_once(fly, ids, bodies)


def test_a_worker_killed_mid_run_and_the_reconciler_still_provision_each_once(
    stack, accounts, fly, settings, monkeypatch
):
    """SIGKILL one worker while it provisions; the others carry on; the reconciler (what beat runs
    every 30 s) closes the attempt that died with it and queues that work again; the worker comes
    back. Nothing is made twice: the run queued again adopts what the dead one made."""
    fly.set_faults(latency_ms=100)  # a run takes about a second: long enough to be caught in it
    victim = stack.workers[0]
    ids = create_all(stack, accounts, KILLED)
    lost = set()  # the tasks that died with the victim
    for _ in range(3):  # a run that ends in the instant before the kill is not caught: again
        deadline = time.monotonic() + 120
        while True:  # until the victim is in the middle of an attempt
            taken = set(TASK_TAKEN.findall(victim.log())) - set(TASK_DONE.findall(victim.log()))
            if WorkspaceEvent.objects.filter(task_id__in=taken, duration_ms__isnull=True).exists():
                break
            assert time.monotonic() < deadline, f"{victim.name} took no task:\n{stack.logs()}"
            time.sleep(0.02)
        victim.kill(signal.SIGKILL)
        lost |= set(TASK_TAKEN.findall(victim.log())) - set(TASK_DONE.findall(victim.log()))
        abandoned = {
            str(workspace_id)
            for workspace_id in WorkspaceEvent.objects.filter(
                task_id__in=lost, kind=WorkspaceEvent.Kind.ATTEMPT, duration_ms__isnull=True
            ).values_list("workspace_id", flat=True)
        }
        if abandoned:
            break
        victim.start()
    assert abandoned, "the victim was never killed in the middle of an attempt"

    # The others do everything but what the victim held (its message died with it, or waits in the
    # broker for a visibility timeout far longer than this test).
    deadline = time.monotonic() + 300
    while Workspace.objects.filter(pk__in=ids).exclude(status="running").count() > len(lost):
        assert time.monotonic() < deadline, f"the other workers did not finish:\n{stack.logs()}"
        time.sleep(0.5)
    victim.start()  # as a supervisor would

    # The reconciler, with its thresholds low enough for a test (no run here takes 2 s), sending to
    # this stack's queue.
    settings.WORKSPACE_ATTEMPT_PRESUMED_DEAD_SECONDS = 2
    settings.WORKSPACE_REQUEUE_AFTER_SECONDS = 2
    send_task = celery_app.send_task  # what workspaces.scheduling sends through
    monkeypatch.setattr(
        celery_app,
        "send_task",
        lambda name, args=None, kwargs=None, **options: send_task(
            name, args, kwargs, **{**options, "queue": stack.queue}
        ),
    )
    time.sleep(2)
    report = reconciler.reconcile()
    assert abandoned <= set(report.requeued), report
    bodies = wait_until_running(stack, accounts, ids)
    assert_each_provisioned_exactly_once(fly, ids, bodies, abandoned=abandoned)
