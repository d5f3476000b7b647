"""The schema passes the OpenAPI linters client developers run on it: redocly's ``recommended``
rules and spectral's ``oas`` ruleset, with no errors (style warnings may stay: docs/sdk.md counts
them). Run on the schema the code generates now, with the tools pinned in tests/contract/npm."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema_file(tmp_path) -> Path:
    path = tmp_path / "openapi.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return path


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "REDOCLY_TELEMETRY": "off",
        "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
    }
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)  # noqa: S603


def test_redocly_recommended_finds_no_error(node_tools, schema_file):
    result = _run(
        [
            str(node_tools / "node_modules/.bin/redocly"),
            *("lint", "--extends", "recommended", "--format", "json", str(schema_file)),
        ],
        cwd=schema_file.parent,
    )
    report = json.loads(result.stdout[result.stdout.index("{") :])
    errors = [problem for problem in report["problems"] if problem["severity"] == "error"]
    assert errors == [], json.dumps(errors, indent=1)
    assert result.returncode == 0, result.stdout + result.stderr


def test_spectral_oas_finds_no_error(node_tools, schema_file):
    ruleset = schema_file.parent / ".spectral.yaml"
    ruleset.write_text('extends: ["spectral:oas"]\n')
    result = _run(
        [
            str(node_tools / "node_modules/.bin/spectral"),
            *("lint", "--ruleset", str(ruleset), "--format", "json", "--fail-severity", "error"),
            str(schema_file),
        ],
        cwd=schema_file.parent,
    )
    problems = json.loads(result.stdout[result.stdout.index("[") :])
    errors = [problem for problem in problems if problem["severity"] == 0]  # 0: error, 1: warning
    assert errors == [], json.dumps(errors, indent=1)
    assert result.returncode == 0, result.stdout + result.stderr
