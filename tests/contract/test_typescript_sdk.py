"""The TypeScript client a user would generate (openapi-generator's typescript-fetch, over
openapi.yaml), compiled with ``tsc --strict`` and run with node through the same scenario as the
Python SDK (test_generated_sdk.py): a workspace's whole life on the live server, and the errors as
the typed ApiError. The scenario is tests/contract/typescript/scenario.ts."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import ProjectFactory, UserFactory, make_token

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "openapi.yaml"
SCENARIO = Path(__file__).parent / "typescript"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.worker


def _run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603
        command, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="session")
def typescript_client(tmp_path_factory) -> Path:
    """The generated client's folder (``src/``), beside the scenario."""
    out = tmp_path_factory.mktemp("ts")
    result = _run(
        [
            str(BIN / "openapi-generator-cli"),
            *("generate", "-i", str(SCHEMA), "-g", "typescript-fetch", "-o", str(out / "client")),
            "--additional-properties=npmName=workspaces-client,supportsES6=true",
        ],
        cwd=out,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    shutil.copytree(out / "client" / "src", out / "src")
    return out


@pytest.fixture(scope="session")
def compiled_scenario(typescript_client, node_tools) -> Path:
    """The scenario and the client compiled together with ``tsc --strict``: a call the schema types
    differently from what the scenario uses does not compile."""
    for name in ("scenario.ts", "tsconfig.json"):
        shutil.copyfile(SCENARIO / name, typescript_client / name)
    result = _run(
        [
            str(node_tools / "node_modules/.bin/tsc"),
            *("-p", "tsconfig.json", "--typeRoots", str(node_tools / "node_modules/@types")),
        ],
        cwd=typescript_client,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return typescript_client / "dist" / "scenario.js"


def test_the_create_is_typed_as_the_created_workspace(typescript_client):
    """Not as the dry-run's plan, which would hand a real create's caller no ``id``."""
    api = (typescript_client / "src" / "apis" / "WorkspacesApi.ts").read_text()
    (returned,) = re.findall(r"async workspacesCreate\(.*\): Promise<(\w+)>", api)
    assert returned == "Workspace"


def _node(script: Path, scenario: str, **env: str) -> None:
    result = _run(["node", str(script)], cwd=script.parent, SCENARIO=scenario, **env)
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr


def test_a_workspace_s_whole_life_through_the_typescript_client(live, compiled_scenario):
    _node(compiled_scenario, "wholeLife", API_URL=live.url, TOKEN=make_token(UserFactory()))


def test_errors_come_back_as_the_typed_api_error_in_typescript(live, compiled_scenario):
    user = UserFactory()
    _node(
        compiled_scenario,
        "typedErrors",
        API_URL=live.url,
        TOKEN=make_token(user),
        PROJECT_ID=str(ProjectFactory(owner=user).id),
        OTHER_PROJECT_ID=str(ProjectFactory(owner=UserFactory()).id),
    )
