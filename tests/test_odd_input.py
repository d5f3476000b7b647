"""Odd input a hostile or careless client can send answers a 4xx in the error format, never a 500:
bodies over the size limit, JSON nested too deeply, NUL characters (which PostgreSQL cannot store
in text) in bodies, headers and queries, with or without an Idempotency-Key.

Run on SQLite by default; the NUL cases matter most on PostgreSQL (run them with DATABASE_URL)."""

import json
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from accounts.models import IdempotencyKey
from projects.models import Project, Role
from tests.conftest import Api
from tests.factories import MembershipFactory, WorkspaceFactory
from workspaces.agent_tokens import agent_token_for

pytestmark = pytest.mark.django_db

SCHEMA = yaml.safe_load((Path(settings.BASE_DIR) / "openapi.yaml").read_text())
OPERATIONS_WITH_A_BODY = sorted(
    (method.upper(), path)
    for path, operations in SCHEMA["paths"].items()
    for method, operation in operations.items()
    if isinstance(operation, dict) and "requestBody" in operation
)


def send(api: Api, method: str, path: str, body: bytes | str, headers=None):
    merged = api._headers(headers)
    return api.client.generic(method, path, body, content_type="application/json", **merged)


@pytest.fixture
def things(user, project):
    """Real ids for every path parameter of the API, all visible to ``user``."""
    workspace = WorkspaceFactory(project=project, status="running")
    member = MembershipFactory(project=project, role=Role.MEMBER).user
    return {"member": member, "workspace": workspace, "project": project}


def concrete(path: str, things) -> tuple[str, Api | None]:
    """The path with real ids; the heartbeat takes the workspace's agent token, not a user's."""
    target = things["workspace"] if path.startswith("/workspaces/") else things["project"]
    path = path.replace("{id}", str(target.id)).replace("{user_id}", str(things["member"].id))
    agent = Api(agent_token_for(things["workspace"].id)) if path.endswith("/heartbeat") else None
    return path, agent


# --- bodies over DATA_UPLOAD_MAX_MEMORY_SIZE -------------------------------------------------------


def too_large_body() -> bytes:
    return b'{"name": "' + b"x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE + b'"}'


def assert_request_too_large(response):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert response.status_code == 413, response.content
    body = response.json()
    assert body["code"] == "request_too_large"
    assert str(limit) in body["error"]
    assert body["details"] == [
        {"field": None, "code": "request_too_large", "message": body["error"], "allowed": {"max": limit}}
    ]


def test_the_schema_lists_operations_with_a_body():
    assert ("POST", "/projects") in OPERATIONS_WITH_A_BODY and len(OPERATIONS_WITH_A_BODY) >= 9


@pytest.mark.parametrize(("method", "path"), OPERATIONS_WITH_A_BODY)
def test_a_body_over_the_limit_is_a_413_on_every_operation_that_takes_one(api, things, method, path):
    url, agent = concrete(path, things)
    projects_before = Project.objects.count()
    assert_request_too_large(send(agent or api, method, url, too_large_body()))
    assert Project.objects.count() == projects_before
    # And the schema says so.
    assert "413" in SCHEMA["paths"][path][method.lower()]["responses"]


@pytest.mark.parametrize("action", ["start", "stop"])
def test_a_body_over_the_limit_is_a_413_under_an_idempotency_key(api, things, action):
    """start and stop take no body, but an Idempotency-Key makes the server read it (to recognise a
    retry of the same request): too large, it is refused the same way, and the key is not kept."""
    url = f"/workspaces/{things['workspace'].id}/{action}"
    assert_request_too_large(send(api, "POST", url, too_large_body(), {"HTTP_IDEMPOTENCY_KEY": "big"}))
    assert not IdempotencyKey.objects.exists()
    assert "413" in SCHEMA["paths"]["/workspaces/{id}/" + action]["post"]["responses"]


def test_a_body_at_the_limit_is_read(api):
    padding = settings.DATA_UPLOAD_MAX_MEMORY_SIZE - len(b'{"name": "n", "description": ""}')
    body = b'{"name": "n", "description": "' + b"d" * padding + b'"}'
    assert len(body) == settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = send(api, "POST", "/projects", body)
    assert response.status_code == 400  # read, parsed and validated: the description is too long
    assert response.json()["details"][0]["field"] == "description"


# --- JSON nested too deeply ------------------------------------------------------------------------


@pytest.mark.parametrize("opening", ["[", '{"a":'])
@pytest.mark.parametrize("key", [None, "deep"])
def test_json_nested_too_deeply_is_malformed_json(api, opening, key):
    closing = "]" if opening == "[" else "}"
    body = opening * 100_000 + "1" + closing * 100_000
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    response = send(api, "POST", "/projects", body, headers)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_json"
    assert "nested too deeply" in response.json()["error"]
    # Exactly what a body that is not JSON at all gets.
    assert send(api, "POST", "/projects", "{nope").json()["code"] == "invalid_json"


@pytest.mark.parametrize("depth", [10, 500, 900, 990])
def test_json_nested_just_under_the_parsers_limit_is_a_validation_error(api, project, depth):
    """Deep, but parseable: the fingerprint of the Idempotency-Key and the validation must not
    overflow either."""
    body = '{"name": ' + "[" * depth + "]" * depth + "}"
    response = send(api, "POST", "/projects", body, {"HTTP_IDEMPOTENCY_KEY": f"d{depth}"})
    assert response.status_code == 400, response.content
    assert response.json()["code"] in {"validation_error", "invalid_json"}


# --- NUL characters --------------------------------------------------------------------------------


def test_a_400_that_echoes_a_nul_is_stored_and_replayed_under_an_idempotency_key(api):
    body = {"na\x00me": "x"}  # an unknown field, named back in the answer
    first = api.post("/projects", body, headers={"HTTP_IDEMPOTENCY_KEY": "nul"})
    assert first.status_code == 400, first.content
    assert first.json()["details"][0]["field"] == "na\x00me"
    again = api.post("/projects", body, headers={"HTTP_IDEMPOTENCY_KEY": "nul"})
    assert again.status_code == 400
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"


def nul_requests(project, member_id, workspace):
    """Every place a client can put a string the server might store or look up."""
    p, w = f"/projects/{project.id}", f"/workspaces/{workspace.id}"
    return [
        ("POST", "/projects", {"name": "a\x00b"}),
        ("POST", "/projects", {"name": "ok", "description": "a\x00b"}),
        ("POST", "/projects", {"name": "ok", "repo_url": "https://example.com/a\x00b.git"}),
        ("POST", "/projects", {"name": "ok", "default_branch": "ma\x00in"}),
        ("PATCH", p, {"name": "a\x00b"}),
        ("PATCH", p, {"description": "\x00"}),
        ("POST", f"{p}/members", {"email": "a\x00b@example.com", "role": "member"}),
        ("POST", f"{p}/members", {"email": "someone@example.com", "role": "mem\x00ber"}),
        ("PATCH", f"{p}/members/{member_id}", {"role": "view\x00er"}),
        ("POST", f"{p}/workspaces", {"hardware": {"cpu_kind": "shared\x00"}}),
        ("POST", f"{p}/workspaces", {"hardware": {"gpu_kind": "a\x00"}}),
        ("PATCH", "/user/settings", {"default_hardware": {"cpu_kind": "\x00"}}),
        ("PATCH", "/user/settings", {"default_hardware": {"gpu_kind": "\x00"}}),
        ("POST", "/auth/tokens", {"name": "a\x00b"}),
        ("POST", "/auth/tokens", {"expires_at": "2099-01-01T00:00:00\x00Z"}),
        ("PATCH", w, {"keep_active": True, "x\x00": 1}),
    ]


@pytest.mark.parametrize("key", [None, "nul-everywhere"])
def test_a_nul_in_any_string_of_a_body_is_a_400(api, user, project, key):
    member = MembershipFactory(project=project, role=Role.MEMBER).user
    workspace = WorkspaceFactory(project=project, status="running")
    projects_before = Project.objects.count()
    for i, (method, path, body) in enumerate(nul_requests(project, member.id, workspace)):
        headers = {"HTTP_IDEMPOTENCY_KEY": f"{key}-{i}"} if key else {}
        response = send(api, method, path, json.dumps(body), headers)
        assert response.status_code == 400, (method, path, body, response.content)
        assert response.json()["code"] == "validation_error", (method, path, response.content)
    assert Project.objects.count() == projects_before


@pytest.mark.parametrize(
    "query",
    [
        "status=%00",
        "status=running%00",
        "project_id=%00",
        "limit=%00",
        "offset=%00",
        "limit=1%00",
    ],
)
def test_a_nul_in_a_query_parameter_is_a_400(api, project, query):
    WorkspaceFactory(project=project)
    response = api.get(f"/workspaces?{query}")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize(
    "path", ["/projects", "/auth/tokens", "/projects/{id}/members", "/projects/{id}/workspaces"]
)
def test_a_nul_in_a_list_query_is_a_400(api, project, path):
    response = api.get(path.replace("{id}", str(project.id)) + "?offset=%00")
    assert response.status_code == 400, response.content


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/projects/%00"),
        ("GET", "/workspaces/%00"),
        ("GET", "/workspaces/%00/events"),
        ("GET", "/projects/{id}/members"),
        ("DELETE", "/auth/tokens/%00"),
        ("DELETE", "/projects/{id}/members/%00"),
    ],
)
def test_a_nul_in_a_path_is_a_404(api, project, method, path):
    path = path.replace("{id}", str(project.id) + ("%00" if path.endswith("/members") else ""))
    response = send(api, method, path, "")
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "header",
    [
        {"HTTP_IDEMPOTENCY_KEY": "a\x00b"},
        {"HTTP_AUTHORIZATION": "Bearer wsk_\x00"},
        {"HTTP_AUTHORIZATION": "Bearer \x00"},
    ],
)
def test_a_nul_in_a_header_is_a_4xx(api, header):
    response = api.post("/projects", {"name": "header"}, headers=header)
    assert response.status_code in (400, 401), response.content
    assert response.json()["code"] in {"validation_error", "invalid_token"}
    assert not Project.objects.filter(name="header").exists()


def test_a_nul_in_the_agent_token_is_a_401(project):
    workspace = WorkspaceFactory(project=project, status="running")
    response = Api("wsa_\x00").post(f"/workspaces/{workspace.id}/heartbeat", {})
    assert response.status_code == 401


def test_a_nul_in_the_request_id_is_replaced_by_one_of_ours(api):
    response = api.get("/profile", headers={"HTTP_X_REQUEST_ID": "a\x00b"})
    assert response.status_code == 200
    assert "\x00" not in response["X-Request-ID"] and len(response["X-Request-ID"]) == 32
