"""Every benchmark entry point answers ``--help`` with its usage, and touches nothing to do so."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("module", ["bench.run", "bench.load", "bench.profile", "bench.report"])
def test_help_prints_usage_and_exits_0(module):
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m {module}"), result.stdout
    assert "Traceback" not in result.stderr


def test_report_without_its_two_files_says_what_it_needs():
    result = subprocess.run(
        [sys.executable, "-m", "bench.report"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "the following arguments are required: before, after" in result.stderr
    assert "Traceback" not in result.stderr
