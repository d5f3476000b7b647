"""The operator console in a real headless Chromium (Debian's ``chromium``, driven by Playwright):
an on-call person finds a broken workspace by its machine id, reads why it is broken, and fixes it.

Screenshots of each step are saved under ``test-artifacts/`` (gitignored; CI keeps them)."""

import os
import signal
import time
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect, sync_playwright

from accounts.services import user_create
from workspaces import reconciler
from workspaces.models import ActorKind, Workspace, WorkspaceEvent
from workspaces.models import WorkspaceStatus as S

from .console import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, PASSWORD, log_in


def wait_for(predicate, timeout=90.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def broken_workspace(worker, api, project, local_machines):
    """A workspace that ran, whose machine then died: the reconciler put it in ``error``."""
    response = api.post(f"/projects/{project.id}/workspaces", {"hardware": {"cpus": 1, "memory_mb": 256}})
    assert response.status_code == 201, response.content
    workspace_id = response.json()["id"]
    wait_for(lambda: Workspace.objects.get(pk=workspace_id).status == S.RUNNING)
    pid = (settings.LOCAL_DRIVER_ROOT / "machines" / workspace_id / "agent.pid").read_text()
    os.kill(int(pid), signal.SIGKILL)
    wait_for(lambda: local_machines.find(workspace_id).state == "failed", timeout=10)
    reconciler.reconcile()
    workspace = Workspace.objects.get(pk=workspace_id)
    assert workspace.status == S.ERROR and workspace.machine_id
    return workspace


@pytest.mark.worker
@pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="needs Debian's chromium (`make test` installs it where it may: root with apt-get; CI always has it)",
)
def test_an_operator_finds_a_broken_workspace_reads_why_and_retries_it(live_server, broken_workspace):
    operator = user_create(email="oncall@example.com", password=PASSWORD, is_staff=True, is_superuser=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    workspace_id, machine_id = str(broken_workspace.id), broken_workspace.machine_id

    # No ORM inside this block: Playwright's sync API runs an event loop in this thread.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            log_in(page, live_server.url, operator.email)

            # Find it by its machine id.
            page.goto(f"{live_server.url}/admin/workspaces/workspace/")
            page.fill("#searchbar", machine_id)
            page.press("#searchbar", "Enter")
            rows = page.locator("#result_list tbody tr")
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text("error")
            expect(rows.first).to_contain_text("stopped unexpectedly")
            page.screenshot(path=ARTIFACTS / "1-search-by-machine-id.png", full_page=True)

            # Its page: the full error and the timeline.
            rows.first.locator(f"a[href*='{workspace_id}']").first.click()
            expect(page.locator(".field-error_message")).to_contain_text(
                f"Machine {machine_id} stopped unexpectedly"
            )
            timeline = page.locator(".inline-group")
            expect(timeline).to_contain_text("Workspace created; provisioning queued.")
            expect(timeline).to_contain_text("Provision attempt 1 succeeded.")
            expect(timeline).to_contain_text("stopped unexpectedly")
            page.screenshot(path=ARTIFACTS / "2-workspace-error-and-timeline.png", full_page=True)

            # Retry provisioning, from its page.
            page.select_option("#workspace-action", "retry_provisioning")
            page.click("#workspace-actions input[type=submit]")
            expect(page.locator(".messagelist")).to_contain_text("provisioning retried")
            page.screenshot(path=ARTIFACTS / "3-retry-requested.png", full_page=True)

            # Reload until it is running.
            deadline = time.monotonic() + 90
            while page.locator(".field-status .readonly").inner_text().strip().lower() != "running":
                assert time.monotonic() < deadline, "the workspace never reached running"
                time.sleep(0.5)
                page.reload()
            expect(page.locator(".inline-group")).to_contain_text("Provision attempt 2 succeeded.")
            page.screenshot(path=ARTIFACTS / "4-running-again.png", full_page=True)
        finally:
            browser.close()

    broken_workspace.refresh_from_db()
    assert broken_workspace.status == S.RUNNING
    retry = WorkspaceEvent.objects.get(workspace=broken_workspace, from_status=S.ERROR, to_status=S.STARTING)
    assert (retry.actor_kind, retry.actor_user) == (ActorKind.OPERATOR, operator)
