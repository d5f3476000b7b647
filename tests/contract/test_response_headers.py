"""The response headers the schema declares are the ones the live server sends: each operation of
/openapi.json is called (its success, and the errors every operation shares), and each answer's
headers among those the API uses (config/api/openapi.py, ``RESPONSE_HEADERS``) are compared with the
ones the schema declares for that status: nothing sent undeclared, every ``required`` one sent."""

import re
import time
import uuid
from collections import defaultdict

import httpx
import pytest

from config.api.openapi import RESPONSE_HEADERS
from tests.factories import UserFactory, make_token
from workspaces.agent_tokens import agent_token_for

pytestmark = pytest.mark.worker

TRACKED = {name.lower() for name in RESPONSE_HEADERS}


class Recorder:
    """Calls operations by ``operationId`` and keeps every answer."""

    def __init__(self, url: str, schema: dict):
        self.url, self.schema = url, schema
        self.operations = {
            operation["operationId"]: (method.upper(), path, operation)
            for path, methods in schema["paths"].items()
            for method, operation in methods.items()
            if isinstance(operation, dict) and "operationId" in operation
        }
        self.answers: list[tuple[str, httpx.Response]] = []

    def __call__(
        self, operation_id, token=None, *, expect=None, json=None, headers=None, params=None, **path
    ):
        method, template, _ = self.operations[operation_id]
        url = self.url + re.sub(r"{(\w+)}", lambda m: str(path[m.group(1)]), template)
        all_headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
        response = httpx.request(method, url, json=json, headers=all_headers, params=params, timeout=30)
        if expect is not None:
            assert response.status_code == expect, (operation_id, response.status_code, response.text)
        self.answers.append((operation_id, response))
        return response

    def declared(self, operation_id: str, status: int) -> dict[str, bool]:
        """The declared headers of that answer, by lower-case name: whether each is required."""
        operation = self.operations[operation_id][2]
        response = operation["responses"].get(str(status))
        assert response is not None, f"{operation_id} answered {status}, which the schema does not document"
        components = self.schema["components"].get("headers", {})
        out = {}
        for name, header in response.get("headers", {}).items():
            header = components[header["$ref"].rsplit("/", 1)[1]] if "$ref" in header else header
            out[name.lower()] = bool(header.get("required"))
        return out


def _wait_for(recorder, token, workspace_id, wanted, timeout=60):
    deadline = time.monotonic() + timeout
    while (status := recorder("workspaces_retrieve", token, id=workspace_id).json()["status"]) != wanted:
        assert time.monotonic() < deadline, f"still {status}, waiting for {wanted}"
        time.sleep(0.1)


def _every_operation(call: Recorder) -> None:
    owner, member, decliner = UserFactory(), UserFactory(), UserFactory()
    token, member_token, decliner_token = make_token(owner), make_token(member), make_token(decliner)

    # The caller.
    call("profile_retrieve", token, expect=200)
    settings = call("user_settings_retrieve", token, expect=200).json()
    call("user_settings_update", token, expect=200, json=settings)
    call("user_settings_partial_update", token, expect=200, json={"default_hardware": {"cpus": 2}})

    # Projects, with an Idempotency-Key replayed (a success and an error), and a list's next page.
    key = str(uuid.uuid4())
    body = {"name": "headers", "repo_url": "https://github.com/example/app.git"}
    project = call("projects_create", token, expect=201, json=body, headers={"Idempotency-Key": key}).json()
    replay = call("projects_create", token, expect=201, json=body, headers={"Idempotency-Key": key})
    assert replay.headers["Idempotent-Replayed"] == "true"
    bad_key = str(uuid.uuid4())
    for _ in range(2):
        call("projects_create", token, expect=400, json={"nmae": "x"}, headers={"Idempotency-Key": bad_key})
    other = call("projects_create", token, expect=201, json={"name": "other"}).json()
    paged = call("projects_list", token, expect=200, params={"limit": 1})
    assert 'rel="next"' in paged.headers["Link"]
    call("projects_list", token, expect=200)
    call("projects_retrieve", token, expect=200, id=project["id"])
    call("projects_partial_update", token, expect=200, json={"description": "d"}, id=project["id"])
    call("projects_retrieve", token, expect=404, id=uuid.uuid4())

    # Members and invitations.
    invitation = call(
        "project_members_create",
        token,
        expect=201,
        json={"email": member.email, "role": "member"},
        id=project["id"],
    ).json()
    call("project_invitations_list", token, expect=200, id=project["id"])
    call("project_invitations_retrieve", token, expect=200, id=project["id"], invitation_id=invitation["id"])
    call("invitations_list", member_token, expect=200)
    call("invitations_accept", member_token, expect=201, invitation_id=invitation["id"])
    call("project_members_list", token, expect=200, id=project["id"])
    if "project_members_retrieve" in call.operations:
        call("project_members_retrieve", token, expect=200, id=project["id"], user_id=member.id)
    call(
        "project_members_partial_update",
        token,
        expect=200,
        json={"role": "viewer"},
        id=project["id"],
        user_id=member.id,
    )
    call("project_members_destroy", token, expect=204, id=project["id"], user_id=member.id)
    declined = call(
        "project_members_create",
        token,
        expect=201,
        json={"email": decliner.email, "role": "viewer"},
        id=project["id"],
    ).json()
    call("invitations_decline", decliner_token, expect=204, invitation_id=declined["id"])
    withdrawn = call(
        "project_members_create", token, expect=201, json={"email": "nobody@example.com"}, id=project["id"]
    ).json()
    call("project_invitations_destroy", token, expect=204, id=project["id"], invitation_id=withdrawn["id"])

    # A workspace's life.
    hardware = {"hardware": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}}
    if "workspaces_plan" in call.operations:
        call("workspaces_plan", token, expect=200, json=hardware, id=project["id"])
    else:
        call(
            "workspaces_create",
            token,
            expect=200,
            json=hardware,
            params={"dry_run": "true"},
            id=project["id"],
        )
    workspace = call(
        "workspaces_create",
        token,
        expect=201,
        json=hardware,
        headers={"Idempotency-Key": f"ws-{key}"},
        id=project["id"],
    ).json()
    call("project_workspaces_list", token, expect=200, id=project["id"])
    call("workspaces_list", token, expect=200)
    call("workspaces_partial_update", token, expect=200, json={"keep_active": True}, id=workspace["id"])
    _wait_for(call, token, workspace["id"], "running")
    call("workspaces_heartbeat", agent_token_for(workspace["id"]), expect=204, json={}, id=workspace["id"])
    for _ in range(2):  # the second is a replay, with the first answer's headers (ETag too)
        call(
            "workspaces_stop",
            token,
            expect=200,
            headers={"Idempotency-Key": f"stop-{key}"},
            id=workspace["id"],
        )
    _wait_for(call, token, workspace["id"], "stopped")
    call("workspaces_start", token, expect=200, id=workspace["id"])
    call("workspaces_start", token, expect=400, id=workspace["id"])  # not startable now
    call("workspaces_events_list", token, expect=200, id=workspace["id"])
    call("workspaces_destroy", token, expect=204, id=workspace["id"])

    # Tokens.
    created = call("auth_tokens_create", token, expect=201, json={"name": "ci"}).json()
    call("auth_tokens_list", token, expect=200)
    if "auth_tokens_retrieve" in call.operations:
        call("auth_tokens_retrieve", token, expect=200, id=created["id"])
    call("auth_tokens_destroy", token, expect=204, id=created["id"])
    call("projects_destroy", token, expect=204, id=other["id"])

    # What every operation answers alike: 401 without a token, 406 to an Accept without JSON.
    for operation_id, (_, template, _) in call.operations.items():
        ids = {name: uuid.uuid4() for name in re.findall(r"{(\w+)}", template)}
        call(operation_id, expect=401, **ids)
        call(operation_id, token, expect=406, headers={"Accept": "text/html"}, **ids)

    # A body over the limit (413) and a request line over gunicorn's (414, before the application).
    big = {"name": "x" * (3 * 1024 * 1024)}
    call("projects_create", token, expect=413, json=big)
    call("projects_list", token, expect=414, params={"offset": "9" * 5000})


def test_every_answer_carries_the_headers_its_operation_declares(live):
    call = Recorder(live.url, httpx.get(f"{live.url}/openapi.json").json())
    _every_operation(call)

    called = {operation_id for operation_id, response in call.answers if response.status_code < 300}
    assert called == set(call.operations), f"not called with success: {set(call.operations) - called}"

    undeclared, missing, etags, seen = [], [], [], defaultdict(set)
    for operation_id, response in call.answers:
        declared = call.declared(operation_id, response.status_code)
        sent = {name for name in TRACKED if name in response.headers}
        for name in sent:
            seen[name].add(operation_id)
        label = f"{operation_id} {response.status_code}"
        undeclared += [f"{label}: {name}" for name in sent - set(declared) if name != "etag"]
        missing += [
            f"{label}: {name}"
            for name, required in declared.items()
            if required and name not in sent and name != "etag"
        ]
        etags += [f"{label}: sent, undeclared" for name in sent - set(declared) if name == "etag"]
        etags += [f"{label}: declared, not sent" for name in declared if name == "etag" and name not in sent]
    assert not undeclared, "sent but not declared:\n" + "\n".join(undeclared)
    assert not missing, "declared as required but not sent:\n" + "\n".join(missing)
    # The optional ones were seen at least once: the next page's Link, and a replay.
    assert seen["link"] and seen["idempotent-replayed"], dict(seen)
    # Last, on its own: ETag on single resources (sent by the viewsets, config/api/conditional.py).
    assert not etags, "ETag:\n" + "\n".join(etags)
