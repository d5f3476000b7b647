"""docs/api.md, the API reference, says what the committed schema (openapi.yaml) says.

Every operation of the schema is documented, every ``METHOD /path`` the reference names is an
operation of the schema (so a removed or renamed endpoint cannot linger in the docs), and every error
code the schema's examples show is in the reference's table of codes.
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("get", "post", "put", "patch", "delete")
# `GET /workspaces/{id}` or `POST /projects`, up to a query string, a space or the closing backtick.
OPERATION = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE) (/[A-Za-z0-9_{}/.-]*)")


@pytest.fixture(scope="module")
def schema() -> dict:
    return yaml.safe_load((ROOT / "openapi.yaml").read_text())


@pytest.fixture(scope="module")
def reference() -> str:
    return (ROOT / "docs" / "api.md").read_text()


def schema_operations(schema: dict) -> set[str]:
    return {
        f"{method.upper()} {path.rstrip('/') or '/'}"
        for path, item in schema["paths"].items()
        for method in METHODS
        if method in item
    }


def documented_operations(reference: str) -> set[str]:
    return {f"{method} {path.rstrip('/') or '/'}" for method, path in OPERATION.findall(reference)}


def example_error_codes(node) -> set[str]:
    """The ``code`` of every error body (``{"error": ..., "code": ...}``) among the schema's examples."""
    codes = set()
    if isinstance(node, dict):
        if isinstance(node.get("error"), str) and isinstance(node.get("code"), str):
            codes.add(node["code"])
        for value in node.values():
            codes |= example_error_codes(value)
    elif isinstance(node, list):
        for value in node:
            codes |= example_error_codes(value)
    return codes


def codes_table(reference: str) -> set[str]:
    """The codes of the reference's "Error codes" section: the first cell of each table row."""
    section = reference.split("### Error codes", 1)[1].split("\n## ", 1)[0]
    cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {code for cell in cells for code in re.findall(r"`([a-z_]+)`", cell)}


def test_every_operation_of_the_schema_is_documented(schema, reference):
    missing = schema_operations(schema) - documented_operations(reference)
    assert not missing, f"in openapi.yaml but not in docs/api.md: {sorted(missing)}"


def test_every_documented_operation_is_in_the_schema(schema, reference):
    unknown = documented_operations(reference) - schema_operations(schema)
    assert not unknown, f"in docs/api.md but not in openapi.yaml: {sorted(unknown)}"


def test_every_error_code_of_the_schema_is_in_the_codes_table(schema, reference):
    codes = example_error_codes(schema)
    assert "validation_error" in codes  # the walk finds the examples at all
    missing = codes - codes_table(reference)
    assert not missing, (
        f"error codes in openapi.yaml's examples but not in docs/api.md's table: {sorted(missing)}"
    )


def test_the_idempotency_section_lists_exactly_the_operations_that_take_a_key(schema, reference):
    takes_key = {
        f"{method.upper()} {path}"
        for path, item in schema["paths"].items()
        for method in METHODS
        if any(p.get("name") == "Idempotency-Key" for p in item.get(method, {}).get("parameters", []))
    }
    section = reference.split("\n## Idempotency", 1)[1].split("\n## ", 1)[0]
    assert documented_operations(section) == takes_key


def test_the_reference_points_only_inside_the_repository():
    """The README and every doc cite files of this repository, never a spec kept beside it."""
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for outside in ("shared/", "API.md", "style.md"):
            assert outside not in text, f"{path.relative_to(ROOT)} cites {outside!r}"
