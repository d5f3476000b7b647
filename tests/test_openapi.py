"""The OpenAPI schema is part of the product: SDKs are generated from it."""

import pytest
import yaml

pytestmark = pytest.mark.django_db

ERROR_REF = {"$ref": "#/components/schemas/ApiError"}


@pytest.fixture
def schema(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_the_create_endpoint_documents_every_response_with_the_error_schema(schema):
    operation = schema["paths"]["/projects/{id}/workspaces"]["post"]
    assert operation["operationId"] == "workspaces_create"
    assert operation["security"] == [{"BearerAuth": []}]
    responses = operation["responses"]
    assert responses["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Workspace"
    }
    for status in ["400", "401", "403", "404", "415"]:
        assert responses[status]["content"]["application/json"]["schema"] == ERROR_REF, status
    assert list(operation["requestBody"]["content"]) == ["application/json"]  # JSON only: no form parsers
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert parameters["id"]["schema"] == {"type": "string", "format": "uuid"}
    assert parameters["Idempotency-Key"]["in"] == "header"
    for status in ["409", "422", "429"]:
        assert responses[status]["content"]["application/json"]["schema"] == ERROR_REF, status


def test_a_create_has_one_success_answer_so_every_generator_types_it_as_a_workspace(schema):
    # Generators type an operation by its lowest 2xx: a documented dry-run 200 made typescript-fetch
    # parse a real create as a WorkspacePlan. The dry run is an operation of its own.
    create = schema["paths"]["/projects/{id}/workspaces"]["post"]
    assert [status for status in create["responses"] if status.startswith("2")] == ["201"]
    assert "dry_run" not in {p["name"] for p in create["parameters"]}
    plan = schema["paths"]["/projects/{id}/workspaces/plan"]["post"]
    assert plan["operationId"] == "workspaces_plan"
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert plan["requestBody"]["content"]["application/json"]["schema"] == body
    assert [status for status in plan["responses"] if status.startswith("2")] == ["200"]
    assert plan["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/WorkspacePlan"
    }


def test_a_workspace_documents_its_etag_and_if_match(schema):
    detail = schema["paths"]["/workspaces/{id}"]
    for label, operation in [
        ("GET", detail["get"]),
        ("PATCH", detail["patch"]),
        ("start", schema["paths"]["/workspaces/{id}/start"]["post"]),
        ("stop", schema["paths"]["/workspaces/{id}/stop"]["post"]),
    ]:
        assert operation["responses"]["200"]["headers"]["ETag"]["schema"] == {"type": "string"}, label
    for method in ["patch", "delete"]:
        parameters = {p["name"]: p for p in detail[method]["parameters"]}
        assert parameters["If-Match"]["in"] == "header" and not parameters["If-Match"].get("required")
        failed = detail[method]["responses"]["412"]["content"]["application/json"]
        assert failed["schema"] == ERROR_REF
        (example,) = failed["examples"].values()
        assert example["value"]["code"] == "precondition_failed"


def test_bearer_security_scheme(schema):
    assert schema["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"


def test_workspace_fields_and_nullability(schema):
    workspace = schema["components"]["schemas"]["Workspace"]
    assert set(workspace["required"]) == set(workspace["properties"])
    nullable = {name for name, field in workspace["properties"].items() if field.get("nullable")}
    assert nullable == {"machine_id", "private_ip", "git_ref", "error_message"}
    assert schema["components"]["schemas"]["Hardware"]["properties"]["gpu_kind"]["nullable"] is True
    assert schema["components"]["schemas"]["WorkspaceStatus"]["enum"] == [
        "creating",
        "starting",
        "running",
        "stopping",
        "stopped",
        "error",
        "stop_failed",
    ]


def test_yaml_is_served_too(client):
    response = client.get("/openapi.yaml")
    assert response.status_code == 200
    assert yaml.safe_load(response.content)["paths"]


def test_swagger_ui_needs_no_cdn(client):
    page = client.get("/docs").content.decode()
    assert "drf_spectacular_sidecar" in page
    assert "cdn." not in page and "unpkg" not in page
    assert (
        client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200
    )


def _operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_is_named_tagged_summarized_and_its_errors_shown(schema):
    operation_ids = [operation["operationId"] for _, operation in _operations(schema)]
    assert len(operation_ids) == len(set(operation_ids)) >= 26
    for label, operation in _operations(schema):
        assert operation["tags"] and operation["summary"] and operation.get("description"), label
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            content = response["content"]["application/json"]
            assert content["schema"] == ERROR_REF, (label, status)
            (example,) = content["examples"].values()
            assert set(example["value"]) >= {"error", "code"}, (label, status)


def test_request_objects_refuse_unknown_fields(schema):
    for name, component in schema["components"]["schemas"].items():
        if name.endswith("Request"):
            assert component["additionalProperties"] is False, name


def test_named_enums(schema):
    components = schema["components"]["schemas"]
    assert components["CpuKind"]["enum"] == ["shared", "performance"]
    assert components["Hardware"]["properties"]["cpu_kind"] == {"$ref": "#/components/schemas/CpuKind"}
    assert (
        "NullEnum" not in components
    )  # a nullable enum is a nullable reference, which every generator reads
