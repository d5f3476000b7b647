"""POST /workspaces/{id}/heartbeat: agent tokens only, 401 before anything else, strict body."""

import uuid
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from tests.conftest import Api
from tests.factories import WorkspaceFactory, make_token
from workspaces.agent_tokens import agent_token_for, agent_token_matches, agent_token_workspace_id
from workspaces.models import Workspace, WorkspaceStatus
from workspaces.services import _machine_spec

pytestmark = pytest.mark.django_db
S = WorkspaceStatus
LONG_AGO = timezone.now() - timedelta(days=1)


def make_workspace(project, status=S.RUNNING, **fields):
    workspace = WorkspaceFactory(project=project, status=status, **{"last_activity_at": LONG_AGO, **fields})
    # updated_at is auto_now: put it back in the past so that a test can see it did not move.
    Workspace.objects.filter(pk=workspace.pk).update(updated_at=LONG_AGO)
    workspace.refresh_from_db()
    return workspace


def agent(workspace_or_id) -> Api:
    """The API as a workspace's machine."""
    return Api(agent_token_for(getattr(workspace_or_id, "id", workspace_or_id)))


def heartbeat_url(workspace_or_id) -> str:
    return f"/workspaces/{getattr(workspace_or_id, 'id', workspace_or_id)}/heartbeat"


@pytest.fixture
def workspace(project):
    return make_workspace(project)


# --- the token ------------------------------------------------------------------------------------


def test_agent_tokens_are_derived_deterministic_and_bound_to_one_workspace():
    first, second = uuid.uuid4(), uuid.uuid4()
    token = agent_token_for(first)

    assert token == agent_token_for(str(first)) == agent_token_for(first)
    assert token.startswith(f"wsa_{first.hex}_") and len(token) == 4 + 32 + 1 + 64
    assert agent_token_for(second) != token
    assert agent_token_matches(first, token) and agent_token_matches(str(first), token)
    assert not agent_token_matches(second, token)
    assert not agent_token_matches("not-a-uuid", token)
    assert agent_token_workspace_id(token) == first
    # Another workspace's id with this MAC, a flipped character, or garbage: not a token.
    assert agent_token_workspace_id(token.replace(first.hex, second.hex)) is None
    assert agent_token_workspace_id(token[:-1] + ("0" if token[-1] != "0" else "1")) is None
    assert agent_token_workspace_id("wsa_garbage") is None


def test_agent_tokens_depend_on_the_pepper():
    workspace_id = uuid.uuid4()
    token = agent_token_for(workspace_id)
    with override_settings(API_TOKEN_PEPPER="another pepper"):
        assert agent_token_for(workspace_id) != token
        assert not agent_token_matches(workspace_id, token)


@override_settings(WORKSPACE_HEARTBEAT_BASE_URL="https://api.example.com/")
def test_the_machine_is_given_its_id_agent_token_and_heartbeat_url(workspace):
    env = _machine_spec(workspace).env

    assert env == {
        "WORKSPACE_ID": str(workspace.id),
        "WORKSPACE_AGENT_TOKEN": agent_token_for(workspace.id),
        "WORKSPACE_HEARTBEAT_URL": f"https://api.example.com/workspaces/{workspace.id}/heartbeat",
    }


# --- accepted -------------------------------------------------------------------------------------


def test_a_heartbeat_with_the_agent_token_records_activity(workspace, django_assert_max_num_queries):
    before = timezone.now()
    with django_assert_max_num_queries(1):  # the token is checked without the database
        response = agent(workspace).post(heartbeat_url(workspace))

    assert response.status_code == 204
    assert response.content == b""
    workspace.refresh_from_db()
    assert workspace.last_activity_at >= before
    assert workspace.updated_at == LONG_AGO  # nothing a user sees changed
    assert workspace.events.count() == 0  # no timeline entry every 30 seconds


def test_an_empty_object_is_accepted(workspace):
    assert agent(workspace).post(heartbeat_url(workspace), {}).status_code == 204


@pytest.mark.parametrize("status", [S.STOPPING, S.STOPPED, S.STARTING, S.ERROR])
def test_a_heartbeat_for_a_workspace_that_is_not_running_is_accepted_and_recorded(project, status):
    workspace = make_workspace(project, status)

    assert agent(workspace).post(heartbeat_url(workspace)).status_code == 204
    workspace.refresh_from_db()
    assert workspace.last_activity_at > LONG_AGO
    assert workspace.status == status


# --- strict body ------------------------------------------------------------------------------------


def test_unknown_fields_are_refused(workspace):
    response = agent(workspace).post(heartbeat_url(workspace), {"busy": True})

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert [(d["field"], d["code"]) for d in body["details"]] == [("busy", "unknown_field")]
    workspace.refresh_from_db()
    assert workspace.last_activity_at == LONG_AGO


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code"),
    [
        ("[]", "application/json", 400, "validation_error"),
        ("{not json", "application/json", 400, "invalid_json"),
        ("busy", "text/plain", 415, "unsupported_media_type"),
    ],
)
def test_a_body_that_is_not_an_object_is_refused(workspace, raw, content_type, status, code):
    response = agent(workspace).post(heartbeat_url(workspace), raw=raw, content_type=content_type)

    assert (response.status_code, response.json()["code"]) == (status, code)


# --- 401: nothing without the right agent token -----------------------------------------------------


def assert_401(response, code="invalid_token"):
    assert response.status_code == 401
    assert response.json()["code"] == code
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_users_api_token_is_refused(api, workspace):
    response = api.post(heartbeat_url(workspace))

    assert_401(response)
    assert "agent token" in response.json()["error"]
    workspace.refresh_from_db()
    assert workspace.last_activity_at == LONG_AGO


def test_another_workspaces_agent_token_is_refused(project, workspace):
    other = make_workspace(project)

    assert_401(agent(other).post(heartbeat_url(workspace)))
    workspace.refresh_from_db()
    assert workspace.last_activity_at == LONG_AGO


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer garbage",
        "Bearer wsa_",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer wsa_" + "0" * 32 + "_" + "0" * 64,  # well formed, forged
    ],
)
def test_garbage_is_refused(workspace, authorization):
    response = Api().post(heartbeat_url(workspace), headers={"HTTP_AUTHORIZATION": authorization})

    assert_401(response)


def test_no_token_is_not_authenticated(workspace):
    assert_401(Api().post(heartbeat_url(workspace)), code="not_authenticated")


def test_a_forged_token_for_the_workspace_itself_is_refused(workspace):
    forged = f"wsa_{workspace.id.hex}_{'a' * 64}"

    assert_401(Api(forged).post(heartbeat_url(workspace)))


@pytest.mark.parametrize(
    "caller",
    [
        lambda other: Api(),
        lambda other: Api("wsa_garbage"),
        lambda other: Api(agent_token_for(other.id)),
        lambda other: Api(f"wsa_{uuid.uuid4().hex}_{'0' * 64}"),
    ],
    ids=["no token", "garbage", "another workspace's token", "forged"],
)
def test_without_the_right_token_an_existing_and_a_missing_workspace_look_the_same(
    project, workspace, user, caller
):
    other = make_workspace(project)
    deleted = make_workspace(project, deleted_at=timezone.now())
    answers = []
    for target in (workspace.id, deleted.id, uuid.uuid4(), "not-a-uuid"):
        response = caller(other).post(heartbeat_url(target))
        answers.append((response.status_code, response.json(), response["WWW-Authenticate"]))
    assert answers[0][0] == 401
    assert answers.count(answers[0]) == len(answers), answers
    # A user's token, even the owner's, is the same story.
    owner = Api(make_token(user))
    assert owner.post(heartbeat_url(workspace)).json() == owner.post(heartbeat_url(uuid.uuid4())).json()


def test_an_agent_token_is_not_an_api_token(workspace):
    response = agent(workspace).get(f"/workspaces/{workspace.id}")

    assert_401(response)


# --- 404: only for a caller holding the workspace's own token ----------------------------------------


def test_a_deleted_workspace_is_404_with_its_valid_token(project):
    workspace = make_workspace(project, deleted_at=timezone.now())

    response = agent(workspace).post(heartbeat_url(workspace))

    assert response.status_code == 404
    assert response.json() == {"error": "Workspace not found.", "code": "not_found"}
    workspace.refresh_from_db()
    assert workspace.last_activity_at == LONG_AGO


def test_a_workspace_that_never_existed_is_404_with_its_token():
    missing = uuid.uuid4()

    assert agent(missing).post(heartbeat_url(missing)).status_code == 404


def test_a_path_that_is_not_a_uuid_is_401_as_no_token_can_be_for_it(workspace):
    assert_401(agent(workspace).post("/workspaces/not-a-uuid/heartbeat"))


def test_the_id_in_the_path_may_be_spelt_in_capitals(workspace):
    assert agent(workspace).post(heartbeat_url(str(workspace.id).upper())).status_code == 204


def test_other_methods_are_not_allowed(workspace):
    response = agent(workspace).get(heartbeat_url(workspace))

    assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed")


# --- the schema ----------------------------------------------------------------------------------


def test_the_heartbeat_is_documented_with_its_own_security_scheme(client):
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/workspaces/{id}/heartbeat"]["post"]

    assert operation["operationId"] == "workspaces_heartbeat"
    assert operation["tags"] == ["Agent"]
    assert operation["security"] == [{"AgentToken": []}]
    assert set(operation["responses"]) == {
        "204",
        "400",
        "401",
        "404",
        "406",
        "413",
        "414",
        "415",
        "431",
    }  # no 429: not rate limited
    for status in ("400", "401", "404"):
        assert operation["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ApiError"
        }
    assert schema["components"]["securitySchemes"]["AgentToken"]["scheme"] == "bearer"
    # Nothing else accepts agent tokens.
    others = [
        op
        for path, item in schema["paths"].items()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op and path != "/workspaces/{id}/heartbeat"
    ]
    assert others and all({"AgentToken": []} not in op.get("security", []) for op in others)
