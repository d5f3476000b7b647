"""Schemathesis over every operation of the live server, authenticated: no 5xx, every answer as the
schema says (status, content type, headers, body), schema-valid input accepted and malformed input
refused with a 4xx, and stateful sequences that follow the schema's links. The settings, and the
few answers allowed beyond the schema's, are in tests/contract/schemathesis.toml."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from accounts.models import UserQuota
from projects.models import Membership, Role
from tests.factories import ProjectFactory, UserFactory, make_token
from workspaces.agent_tokens import agent_token_for

HERE = Path(__file__).resolve().parent
SCHEMATHESIS = Path(sys.executable).with_name("st")
ARTIFACTS = HERE.parent.parent / "test-artifacts" / "contract"
ARTIFACTS = HERE.parent.parent / "test-artifacts" / "contract"

pytestmark = pytest.mark.worker


def test_the_live_server_keeps_its_contract_under_fuzzing(live, tmp_path):
    owner = UserFactory()
    # Room for the hundreds of workspaces the fuzzer makes; the quota rules have their own tests.
    UserQuota.objects.create(
        user=owner, max_workspaces=100_000, max_vcpus=10**6, max_memory_mb=10**9, max_volume_gb=10**7
    )
    token = make_token(owner)
    project = ProjectFactory(owner=owner)
    member = UserFactory()
    Membership.objects.create(project=project, user=member, role=Role.MEMBER)
    created = httpx.post(
        f"{live.url}/projects/{project.id}/workspaces",
        json={},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert created.status_code == 201, created.text
    workspace_id = created.json()["id"]

    env = {
        **os.environ,
        "ST_TOKEN": token,
        "ST_PROJECT_ID": str(project.id),
        "ST_MEMBER_ID": str(member.id),
        "ST_WORKSPACE_ID": workspace_id,
        "ST_AGENT_TOKEN": agent_token_for(workspace_id),
        "SCHEMATHESIS_HOOKS": "tests.contract.st_hooks",
        "NO_COLOR": "1",
    }
    command = [
        str(SCHEMATHESIS),
        *("--config-file", str(HERE / "schemathesis.toml")),
        "run",
        f"{live.url}/openapi.json",
        # Every check but one, which schemathesis.toml explains. One worker thread: with two, Python
        # 3.11.7's ast module (which Hypothesis uses to describe its strategies) now and then fails
        # with "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905, fixed in
        # 3.11.8), a runtime error of the tool, not an answer of ours.
        *("--checks", "all", "--exclude-checks", "ensure_resource_availability", "--workers", "1"),
        *("--report", "junit", "--report-dir", str(tmp_path)),
    ]
    result = subprocess.run(  # noqa: S603 (our own command line)
        command, cwd=HERE.parent.parent, env=env, capture_output=True, text=True, timeout=900
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "schemathesis.log").write_text(result.stdout + result.stderr)
    # Long generated values are cut, so that every failure shows.
    report = "\n".join(line[:400] for line in result.stdout.splitlines())
    print(report[-30000:])
    assert result.returncode == 0, (
        f"schemathesis found problems (all of it in {ARTIFACTS / 'schemathesis.log'}):\n"
        f"{report[-30000:]}\n{result.stderr[-3000:]}\n{live.logs()}"
    )
