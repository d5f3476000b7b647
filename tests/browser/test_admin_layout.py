"""The operator console fits a laptop screen: at 1366 px wide, neither the workspace list nor a
workspace's timeline scrolls sideways, and an attempt's details are one click away.

Screenshots are saved under ``test-artifacts/browser/`` (gitignored; CI keeps them)."""

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from accounts.services import user_create
from tests.factories import ProjectFactory, UserFactory, WorkspaceFactory
from workspaces.models import ActorKind, WorkspaceEvent
from workspaces.models import WorkspaceStatus as S

from .console import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, PASSWORD, log_in

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="needs Debian's chromium (`make test` installs it where it may: root with apt-get; CI always has it)",
)
LONG_ERROR = (
    "Could not clone https://git.example.com/a-rather-long-organisation-name/an-even-longer-repository-name.git "
    "(branch feature/some-long-branch-name-that-goes-on): could not connect, or the server did not answer "
    "as a git server"
)
OVERFLOW = "document.documentElement.scrollWidth <= window.innerWidth"
# The admin puts the list in a box of its own that scrolls sideways: that would hide columns too.
LIST_OVERFLOW = "(() => { const box = document.querySelector('#changelist .results'); return box.scrollWidth <= box.clientWidth; })()"


@pytest.fixture
def busy_workspace(db):
    owner = UserFactory(email="a-person-with-a-long-address@engineering.example.com")
    project = ProjectFactory(owner=owner, name="a-project-with-a-fairly-long-name")
    workspace = WorkspaceFactory(
        project=project,
        status=S.ERROR,
        error_message=LONG_ERROR,
        machine_id="abc123def45678",
        private_ip="127.201.77.254",
    )
    operator = user_create(email="oncall@example.com", password=PASSWORD, is_staff=True, is_superuser=True)
    for attempt in range(1, 7):
        WorkspaceEvent.objects.create(
            workspace=workspace,
            kind=WorkspaceEvent.Kind.ATTEMPT,
            from_status=S.CREATING,
            to_status=S.ERROR,
            operation="provision",
            task_id=f"6f1c7a52-9d2e-4c0b-8a51-{attempt:012d}",
            request_id=f"01HZX3K9Q2V7R8T5W4Y6N1M0P{attempt}",
            duration_ms=12345 + attempt,
            error=LONG_ERROR,
            message=f"Provision attempt {attempt} failed.",
        )
    WorkspaceEvent.objects.create(
        workspace=workspace,
        kind=WorkspaceEvent.Kind.INFO,
        actor_kind=ActorKind.OPERATOR,
        actor_user=operator,
        message=f"Operator {operator.email} queued the provisioning again.",
    )
    for n in range(12):  # a full page of the list
        WorkspaceFactory(
            project=project, status=S.RUNNING, machine_id=f"{n:014x}", private_ip=f"127.1.0.{n + 1}"
        )
    return workspace, operator


def test_the_list_and_the_timeline_fit_at_1366_px(live_server, busy_workspace):
    workspace, operator = busy_workspace
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            log_in(page, live_server.url, operator.email)

            # "View site" leads to the API docs, not to a JSON 404.
            expect(page.locator("#user-tools a", has_text="View site")).to_have_attribute("href", "/docs")

            page.goto(f"{live_server.url}/admin/workspaces/workspace/")
            expect(page.locator("#result_list tbody tr")).to_have_count(13)
            page.screenshot(path=ARTIFACTS / "layout-1366-changelist.png", full_page=True)
            assert page.evaluate(OVERFLOW), "the workspace list scrolls sideways at 1366 px"
            assert page.evaluate(LIST_OVERFLOW), "the workspace list's table is cut off at 1366 px"

            page.goto(f"{live_server.url}/admin/workspaces/workspace/{workspace.pk}/change/")
            timeline = page.locator(".inline-group")
            expect(timeline).to_contain_text("Provision attempt 6 failed.")
            expect(timeline).to_contain_text(operator.email)  # the operator, on the event's actor
            # An attempt's task and request ids are on demand, not columns.
            details = timeline.locator("details.event-details").first
            expect(details.locator("dd").first).not_to_be_visible()
            details.locator("summary").click()
            expect(details).to_contain_text("6f1c7a52-9d2e-4c0b-8a51-000000000001")
            page.screenshot(path=ARTIFACTS / "layout-1366-timeline.png", full_page=True)
            assert page.evaluate(OVERFLOW), "the workspace's timeline scrolls sideways at 1366 px"
        finally:
            browser.close()
