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
        assert operation["responses"]["200"]["headers"]["ETag"] == {"$ref": "#/components/headers/ETag"}, (
            label
        )
    assert schema["components"]["headers"]["ETag"]["schema"]["type"] == "string"
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
    assert components["MemberRole"]["enum"] == ["member", "viewer"]
    assert components["Hardware"]["properties"]["cpu_kind"] == {"$ref": "#/components/schemas/CpuKind"}
    assert (
        "NullEnum" not in components
    )  # a nullable enum is a nullable reference, which every generator reads


CATALOGUE_WITH_OTHER_KINDS = {
    "cpu_kinds": {
        "a100-host": {"cpus": [8, 16], "memory_per_cpu_mb": [4096, 8192], "memory_step_mb": 1024},
    },
    "volume_size_gb": [1, 500],
    "gpu_kinds": [],
}


def test_cpu_kinds_are_a_documented_string_not_an_enum_the_catalogue_would_break(client, settings, schema):
    """The deployment's catalogue names the CPU kinds: the schema promises a string (with the
    default kinds as examples) on every deployment, and the 400 says which kinds this one takes."""
    cpu_kind = schema["components"]["schemas"]["CpuKind"]
    assert cpu_kind["type"] == "string" and "enum" not in cpu_kind
    assert cpu_kind["example"] == "shared"
    assert "`shared` and `performance` by default" in cpu_kind["description"]
    assert "details[].allowed.choices" in cpu_kind["description"]

    settings.WORKSPACE_HARDWARE_CATALOGUE = CATALOGUE_WITH_OTHER_KINDS
    assert client.get("/openapi.json").json()["components"]["schemas"]["CpuKind"] == cpu_kind

    from tests.factories import ProjectFactory, UserFactory, make_token

    user = UserFactory()
    response = client.post(
        f"/projects/{ProjectFactory(owner=user).id}/workspaces",
        {"hardware": {"cpu_kind": "shared", "cpus": 8, "memory_mb": 32768}},
        content_type="application/json",
        headers={"Authorization": f"Bearer {make_token(user)}"},
    )
    assert response.status_code == 400
    (detail,) = [d for d in response.json()["details"] if d["field"] == "hardware.cpu_kind"]
    assert detail["allowed"] == {"choices": ["a100-host"]}


def test_nullable_values_are_valid_openapi_3_0(schema):
    """``nullable`` has a ``type`` beside it, and a nullable enum lists ``null`` (redocly and spectral
    otherwise refuse the schema and the ``null`` in its examples)."""
    components = schema["components"]["schemas"]
    from_status = components["WorkspaceEvent"]["properties"]["from_status"]
    assert from_status["type"] == "string" and from_status["nullable"] is True
    assert from_status["enum"] == [*components["WorkspaceStatus"]["enum"], None]
    hardware = components["WorkspaceCreateRequest"]["properties"]["hardware"]
    assert hardware["type"] == "object" and hardware["nullable"] is True
    assert hardware["allOf"] == [{"$ref": "#/components/schemas/HardwareRequest"}]
    assert components["WorkspaceEvent"]["properties"]["attempt"] == {
        "$ref": "#/components/schemas/EventAttempt"
    }
    assert components["EventAttempt"]["nullable"] is True
    for node in _all_nodes(schema):
        if node.get("nullable"):
            assert "type" in node, node


def _all_nodes(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _all_nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _all_nodes(value)


def test_the_schema_names_a_server_and_says_what_strings_and_sizes_it_refuses(schema):
    assert schema["servers"] == [
        {"url": "/", "description": "This deployment (the server that serves this schema)."}
    ]
    description = schema["info"]["description"]
    assert "NUL character (U+0000)" in description  # the refusals: tests/test_odd_input.py
    assert "406" in description and "413" in description
