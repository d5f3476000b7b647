"""``manage.py machines list|stop|destroy [--all | WORKSPACE_ID ...]``: this installation's local machines.

The local driver's machines are detached processes that outlive ``make run`` (as a provider's machines
outlive the control plane). This finds them by this installation's own records (LOCAL_DRIVER_ROOT's
machine.json files) and acts through the driver's own methods, which check each process is the agent of
that workspace *and of this installation* before they signal it: another checkout's machines on the same
host are never touched, as a ``pkill`` on the agent's module name would.

It acts on machines, not on workspace rows: a workspace stopped or destroyed here is noticed by the
reconciler (its machine is gone or stopped) as any provider-side change is. To stop one workspace in
normal use, call the API; this is the tool for cleaning up a checkout (``make clean`` runs ``stop --all``).
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from workspaces.drivers.base import DriverError
from workspaces.drivers.local import LocalDriver


class Command(BaseCommand):
    help = "List, stop or destroy this installation's local-driver machines (never another checkout's)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["list", "stop", "destroy"])
        parser.add_argument("workspace_ids", nargs="*", metavar="WORKSPACE_ID")
        parser.add_argument("--all", action="store_true", help="Every machine of this installation.")
        parser.add_argument(
            "--root",
            default=None,
            help="The local driver's root (default: LOCAL_DRIVER_ROOT, this checkout's).",
        )

    def handle(self, *args, action, workspace_ids, all, root, **options):
        driver = LocalDriver.from_settings(settings)
        if root is not None:
            driver = LocalDriver(root=root, port=driver.port)
        machines = {machine.workspace_id: machine for machine in driver.list_machines()}
        if action == "list":
            if workspace_ids or all:
                raise CommandError("list takes no workspace ids and no --all: it lists them all.")
            self._list(driver, machines)
            return
        if all == bool(workspace_ids):
            raise CommandError(f"{action} needs either --all or one or more workspace ids.")
        unknown = [workspace_id for workspace_id in workspace_ids if workspace_id not in machines]
        if unknown:
            raise CommandError(f"No machine of this installation for: {', '.join(unknown)}.")
        failed = []
        for workspace_id in workspace_ids or sorted(machines):
            machine = machines[workspace_id]
            try:
                if action == "stop":
                    if machine.state in ("stopped", "created"):
                        continue  # "created": still being made by a worker; stopping would fail
                    driver.stop(machine.machine_id)
                    self.stdout.write(f"stopped {workspace_id}")
                else:
                    driver.destroy(workspace_id)
                    self.stdout.write(f"destroyed {workspace_id}")
            except DriverError as exc:
                failed.append(workspace_id)
                self.stderr.write(f"{workspace_id}: {exc.message}")
        if failed:
            raise CommandError(f"Could not {action} {len(failed)} machine(s): {', '.join(failed)}.")

    def _list(self, driver: LocalDriver, machines: dict) -> None:
        self.stderr.write(f"Installation {driver.installation}, root {driver.root}")
        if not machines:
            self.stderr.write("No machines.")
            return
        self.stdout.write(f"{'WORKSPACE':<38} {'MACHINE':<15} {'STATE':<9} ADDRESS")
        for workspace_id, machine in sorted(machines.items()):
            address = f"{machine.private_ip}:{driver.port}"
            self.stdout.write(f"{workspace_id:<38} {machine.machine_id:<15} {machine.state:<9} {address}")
