"""The SDK a user would generate: openapi-python-client over openapi.yaml, driving the live server
(gunicorn + a Celery worker; in CI on PostgreSQL + Redis) through a workspace's whole life, and the
errors coming back as the typed ApiError the schema promises.

Also: openapi-generator (Java, bundled by the openapi-generator-cli package) generates a Python and
a TypeScript client from the same schema without errors."""

import importlib
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.factories import ProjectFactory, UserFactory, make_token

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "openapi.yaml"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.worker


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # The generators' post-hooks (ruff) come from our venv.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)  # noqa: S603


@pytest.fixture(scope="session")
def sdk(tmp_path_factory):
    """The generated package, imported as ``workspaces_api_client``."""
    out = tmp_path_factory.mktemp("sdk")
    result = _run(
        [
            str(BIN / "openapi-python-client"),
            *("generate", "--path", str(SCHEMA), "--meta", "none"),
            *("--output-path", str(out / "workspaces_api_client")),
        ],
        cwd=out,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Warnings mean the generator dropped parts of the schema it could not understand.
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("workspaces_api_client")
    finally:
        sys.path.remove(str(out))


def test_the_python_sdk_types_a_create_as_a_workspace_and_a_plan_as_a_plan(sdk):
    import typing

    from workspaces_api_client.api.workspaces import workspaces_create, workspaces_plan
    from workspaces_api_client.models import ApiError, Workspace, WorkspacePlan

    created = typing.get_type_hints(workspaces_create.sync)["return"]
    planned = typing.get_type_hints(workspaces_plan.sync)["return"]
    assert set(typing.get_args(created)) == {ApiError, Workspace, type(None)}
    assert set(typing.get_args(planned)) == {ApiError, WorkspacePlan, type(None)}


def _wait_for(get_status, wanted, timeout=60):
    deadline = time.monotonic() + timeout
    while (status := get_status()) != wanted:
        assert time.monotonic() < deadline, f"still {status}, waiting for {wanted}"
        time.sleep(0.1)


def test_a_workspace_s_whole_life_through_the_generated_sdk(live, sdk):
    from workspaces_api_client import AuthenticatedClient
    from workspaces_api_client.api.projects import projects_create
    from workspaces_api_client.api.workspaces import (
        workspaces_create,
        workspaces_destroy,
        workspaces_events_list,
        workspaces_list,
        workspaces_retrieve,
        workspaces_start,
        workspaces_stop,
    )
    from workspaces_api_client.models import (
        ApiError,
        HardwareRequest,
        Project,
        ProjectCreateRequest,
        StatusChange,
        Workspace,
        WorkspaceCreateRequest,
        WorkspaceStatus,
    )

    user = UserFactory()
    client = AuthenticatedClient(base_url=live.url, token=make_token(user), raise_on_unexpected_status=True)

    created = projects_create.sync_detailed(
        client=client,
        body=ProjectCreateRequest(name="sdk", repo_url="https://github.com/example/app.git"),
    )
    assert created.status_code == 201 and isinstance(created.parsed, Project)
    project = created.parsed

    response = workspaces_create.sync_detailed(
        project.id,
        client=client,
        body=WorkspaceCreateRequest(
            hardware=HardwareRequest(cpu_kind="shared", cpus=2, memory_mb=1024),
            keep_active=True,
        ),
        idempotency_key=str(uuid.uuid4()),
    )
    assert response.status_code == 201 and isinstance(response.parsed, Workspace)
    workspace = response.parsed
    assert workspace.status == WorkspaceStatus.CREATING
    assert workspace.machine_id is None and workspace.private_ip is None and workspace.git_ref is None
    # A string, not an enum: the deployment's catalogue decides the kinds (a 400 lists them).
    assert (workspace.hardware.cpu_kind, workspace.hardware.cpus, workspace.hardware.memory_mb) == (
        "shared",
        2,
        1024,
    )

    def status():
        return workspaces_retrieve.sync(workspace.id, client=client).status

    _wait_for(status, WorkspaceStatus.RUNNING)
    running = workspaces_retrieve.sync(workspace.id, client=client)
    assert running.machine_id and running.private_ip and running.error_message is None
    listed = workspaces_list.sync(client=client, project_id=project.id, status=WorkspaceStatus.RUNNING)
    assert [w.id for w in listed.workspaces] == [workspace.id]

    stopped = workspaces_stop.sync_detailed(workspace.id, client=client)
    assert stopped.status_code == 200 and isinstance(stopped.parsed, StatusChange)
    assert stopped.parsed.status == WorkspaceStatus.STOPPING
    _wait_for(status, WorkspaceStatus.STOPPED)

    started = workspaces_start.sync_detailed(workspace.id, client=client)
    assert started.status_code == 200 and started.parsed.status == WorkspaceStatus.STARTING
    _wait_for(status, WorkspaceStatus.RUNNING)

    events = workspaces_events_list.sync(workspace.id, client=client).events
    changes = [(e.from_status, e.to_status) for e in events if e.type_ == "status"]
    assert changes == [
        (None, WorkspaceStatus.CREATING),
        (WorkspaceStatus.CREATING, WorkspaceStatus.STARTING),
        (WorkspaceStatus.STARTING, WorkspaceStatus.RUNNING),
        (WorkspaceStatus.RUNNING, WorkspaceStatus.STOPPING),
        (WorkspaceStatus.STOPPING, WorkspaceStatus.STOPPED),
        (WorkspaceStatus.STOPPED, WorkspaceStatus.STARTING),
        (WorkspaceStatus.STARTING, WorkspaceStatus.RUNNING),
    ]
    assert any(e.attempt and e.attempt.operation == "provision" and e.attempt.request_id for e in events)

    deleted = workspaces_destroy.sync_detailed(workspace.id, client=client)
    assert deleted.status_code == 204
    gone = workspaces_retrieve.sync_detailed(workspace.id, client=client)
    assert gone.status_code == 404 and isinstance(gone.parsed, ApiError) and gone.parsed.code == "not_found"


def test_errors_come_back_as_the_typed_api_error(live, sdk):
    from workspaces_api_client import AuthenticatedClient
    from workspaces_api_client.api.projects import projects_retrieve
    from workspaces_api_client.api.workspaces import workspaces_create, workspaces_list
    from workspaces_api_client.models import ApiError, HardwareRequest, WorkspaceCreateRequest

    user, stranger = UserFactory(), UserFactory()
    client = AuthenticatedClient(base_url=live.url, token=make_token(user))
    project = ProjectFactory(owner=user)
    elsewhere = ProjectFactory(owner=stranger)

    bad = workspaces_create.sync_detailed(
        project.id,
        client=client,
        body=WorkspaceCreateRequest(hardware=HardwareRequest(cpus=1, memory_mb=999_999)),
    )
    assert bad.status_code == 400 and isinstance(bad.parsed, ApiError)
    assert bad.parsed.code == "validation_error"
    detail = bad.parsed.details[0]
    assert (detail.field, detail.code) == ("hardware.memory_mb", "memory_too_high")
    assert detail.allowed["max"] == 2048  # the rule's bounds, for the caller to correct

    wrong_token = AuthenticatedClient(base_url=live.url, token="wsk_nope_" + "x" * 40)
    unauthorized = workspaces_list.sync_detailed(client=wrong_token)
    assert unauthorized.status_code == 401 and isinstance(unauthorized.parsed, ApiError)
    assert unauthorized.parsed.code == "invalid_token"

    theirs = projects_retrieve.sync_detailed(elsewhere.id, client=client)
    assert theirs.status_code == 404 and isinstance(theirs.parsed, ApiError)
    created_there = workspaces_create.sync_detailed(
        elsewhere.id, client=client, body=WorkspaceCreateRequest()
    )
    assert created_there.status_code == 404 and created_there.parsed.code == "not_found"


@pytest.mark.parametrize("generator", ["python", "typescript-fetch"])
def test_openapi_generator_makes_clients_without_errors(generator, tmp_path):
    result = _run(
        [
            str(BIN / "openapi-generator-cli"),
            *("generate", "-i", str(SCHEMA), "-g", generator, "-o", str(tmp_path / generator)),
            "--additional-properties=packageName=workspaces_client,npmName=workspaces-client",
        ],
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert " ERROR " not in output, output
    generated = list((tmp_path / generator).rglob("*.py" if generator == "python" else "*.ts"))
    assert len(generated) > 20
    # A real create is typed as the workspace it makes (the dry run, typed as a plan, is its own
    # operation): these generators type an operation by one success answer.
    source = "\n".join(path.read_text() for path in generated if "api" in path.parent.name)
    python = generator == "python"
    for name, typed in [("workspaces_create", "Workspace"), ("workspaces_plan", "WorkspacePlan")]:
        if python:
            signature = rf"def {name}\(.*?\) -> (\w+):"
        else:
            signature = rf"async {name.replace('_c', 'C').replace('_p', 'P')}\(.*?\): Promise<(\w+)>"
        match = re.search(signature, source, re.DOTALL)
        assert match and match.group(1) == typed, (name, match and match.group(1))
    if generator == "python":
        compiled = _run([sys.executable, "-m", "compileall", "-q", str(tmp_path / generator)], cwd=tmp_path)
        assert compiled.returncode == 0, compiled.stdout + compiled.stderr
