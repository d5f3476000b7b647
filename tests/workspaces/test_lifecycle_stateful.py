"""A hypothesis stateful test of the lifecycle: random sequences of user operations, task runs
(delayed, duplicated or lost), machines dying behind our back and reconciler passes. Whatever the
sequence, once the work settles:

- no workspace is left in a transient state;
- each running workspace has exactly one live machine, and it is the one we recorded;
- a deleted workspace, or one that failed before it ever ran, holds nothing at the provider;
- the provider holds nothing for a workspace we do not know.

Tasks are run by the test itself (the "worker"), so that hypothesis chooses their order, and
duplicates and losses; the driver is the real local one.
"""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)
from hypothesis.strategies import booleans, data, sampled_from

from accounts.models import User
from accounts.services import user_create
from config.celery import app as celery_app
from projects.models import Project
from projects.services import project_create
from workspaces import reconciler, services
from workspaces.drivers import DriverError, get_driver
from workspaces.models import Workspace, WorkspaceStatus
from workspaces.tasks import destroy_workspace, provision_workspace, stop_workspace

pytestmark = pytest.mark.django_db
S = WorkspaceStatus
TASKS = {
    provision_workspace: services.workspace_provision,
    stop_workspace: services.workspace_run_stop,
    destroy_workspace: services.workspace_destroy,
}
SETTLED = {S.RUNNING, S.STOPPED, S.ERROR, S.STOP_FAILED}


class Lifecycle(RuleBasedStateMachine):
    workspaces = Bundle("workspaces")
    queue: list  # (service, workspace id), in the order the tasks were sent

    def __init__(self):
        super().__init__()
        # Each example starts from nothing: no rows, no machines, no queued tasks.
        Workspace.objects.all().delete()
        Project.objects.all().delete()
        User.objects.all().delete()
        self.driver = get_driver("local")
        for machine in self.driver.list_machines():
            self.driver.destroy(machine.workspace_id)
        Lifecycle.queue = []
        self.count = 0

    @initialize()
    def a_user_and_a_project(self):
        self.user = user_create(email="stateful@example.com")
        self.project = project_create(owner=self.user, name="p")
        self.actor = services.Actor("user", user=self.user)

    # --- what users do -------------------------------------------------------------------------

    @precondition(lambda self: self.count < 4)
    @rule(target=workspaces)
    def create(self):
        self.count += 1
        hardware = {"cpus": 1, "memory_mb": 256, "volume_size_gb": 1}
        with transaction.atomic():
            lock = services.workspace_create_lock(user=self.user, project_id=str(self.project.id))
            workspace = services.workspace_create(
                lock=lock, hardware=hardware, keep_active=False, actor=self.actor
            )
        return str(workspace.id)

    @rule(workspace_id=workspaces)
    def start(self, workspace_id):
        self._operate(workspace_id, services.workspace_start, {S.STOPPED, S.ERROR})

    @rule(workspace_id=workspaces)
    def stop(self, workspace_id):
        self._operate(workspace_id, services.workspace_stop, {S.RUNNING, S.STOP_FAILED})

    @rule(workspace_id=consumes(workspaces))
    def delete(self, workspace_id):
        workspace = Workspace.live.get(pk=workspace_id)
        services.workspace_delete(workspace=workspace, actor=self.actor)
        assert not Workspace.live.filter(pk=workspace_id).exists()

    def _operate(self, workspace_id, operation, allowed):
        workspace = Workspace.live.filter(pk=workspace_id).first()
        if workspace is None:
            return
        before = workspace.status
        try:
            operation(workspace=workspace, actor=self.actor)
        except services.InvalidState:
            assert before not in allowed
        else:
            assert before in allowed

    # --- what workers, brokers and providers do ------------------------------------------------------

    @precondition(lambda self: Lifecycle.queue)
    @rule(data=data(), duplicate=booleans())
    def a_worker_runs_a_task(self, data, duplicate):
        index = data.draw(sampled_from(range(len(Lifecycle.queue))))
        task, workspace_id = Lifecycle.queue[index] if duplicate else Lifecycle.queue.pop(index)
        self._run(task, workspace_id)

    @precondition(lambda self: Lifecycle.queue)
    @rule(data=data())
    def the_broker_loses_a_message(self, data):
        Lifecycle.queue.pop(data.draw(sampled_from(range(len(Lifecycle.queue)))))

    @rule(workspace_id=workspaces)
    def a_machine_dies(self, workspace_id):
        self.driver.destroy(workspace_id)

    @rule()
    def the_reconciler_runs(self):
        reconciler.reconcile(now=timezone.now() + timedelta(minutes=3))

    def _run(self, task, workspace_id):
        try:
            TASKS[task](workspace_id=workspace_id, task_id="stateful")
        except DriverError as exc:
            assert exc.transient
            Lifecycle.queue.append((task, workspace_id))  # Celery would retry it

    # --- invariants ------------------------------------------------------------------------------------

    @invariant()
    def at_most_one_machine_per_workspace_and_none_for_strangers(self):
        known = {str(pk) for pk in Workspace.objects.values_list("pk", flat=True)}
        held = [m.workspace_id for m in self.driver.list_machines()]
        assert len(held) == len(set(held))
        assert set(held) <= known

    @precondition(lambda self: self.count > 0)
    @rule()
    def everything_settles(self):
        """Run the work to the end (the reconciler recovers what was lost), then check the promises."""
        for _ in range(4):
            for _ in range(50):
                if not Lifecycle.queue:
                    break
                self._run(*Lifecycle.queue.pop(0))
            reconciler.reconcile(now=timezone.now() + timedelta(minutes=3))
        assert not Lifecycle.queue
        machines = {m.workspace_id: m for m in self.driver.list_machines()}
        for workspace in Workspace.objects.all():
            machine = machines.get(str(workspace.id))
            if workspace.deleted_at is not None:
                assert workspace.destroyed_at is not None and machine is None, workspace
                continue
            assert workspace.status in SETTLED, workspace
            if workspace.status == S.RUNNING:
                assert machine is not None and machine.state == "started", (workspace, machine)
                assert machine.machine_id == workspace.machine_id
            if workspace.status == S.ERROR and workspace.provisioned_at is None:
                assert machine is None, (workspace, machine)
            if workspace.status == S.ERROR:
                assert workspace.error_message


@pytest.fixture
def captured_tasks(monkeypatch):
    """Tasks go to the test's own queue instead of the broker (the far side of
    ``workspaces.scheduling``): the state machine is the worker."""
    by_name = {task.name: task for task in TASKS}

    def queue_it(name, args=(), kwargs=None, **options):
        Lifecycle.queue.append((by_name[name], *args))

    monkeypatch.setattr(celery_app, "send_task", queue_it)


def test_the_lifecycle_keeps_its_promises(captured_tasks, local_machines):
    Lifecycle.TestCase.settings = settings(
        max_examples=40,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(Lifecycle, settings=Lifecycle.TestCase.settings)
