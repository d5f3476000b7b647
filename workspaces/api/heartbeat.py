"""``POST /workspaces/{id}/heartbeat``: a workspace's machine says it is in use (idle auto-stop)."""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import InvalidToken
from config.api.errors import NotFound
from config.api.openapi import error_responses, uuid_path_parameter
from config.api.serializers import StrictSerializer
from config.values import parse_uuid
from workspaces.api.agent_auth import AgentTokenAuthentication, WorkspaceAgentOnly
from workspaces.idle import workspace_heartbeat


class HeartbeatInputSerializer(StrictSerializer):
    """No fields: the body is empty or ``{}``; anything else is an ``unknown_field``."""


class WorkspaceHeartbeatView(APIView):
    authentication_classes = [AgentTokenAuthentication]
    permission_classes = [WorkspaceAgentOnly]
    # The rate limits count per user, and an agent is none; its machine sends one request per
    # heartbeat interval at most.
    throttle_classes = []

    @extend_schema(
        operation_id="workspaces_heartbeat",
        summary="Report activity (agent)",
        description=(
            "Called by the workspace's own machine while it is in use, with the workspace's agent "
            "token (`WORKSPACE_AGENT_TOKEN`, given to the machine at creation); a user's API token is "
            "refused. Sets the workspace's last activity to now, which holds off idle auto-stop. "
            "A heartbeat for a workspace that is not `running` is accepted and recorded too (a machine "
            "may still report while it is being stopped).\n\n"
            "The token is checked before anything else: without the right agent token every answer "
            "is 401 (also for an id that is not a UUID), so the endpoint never tells whether a "
            "workspace exists. With it, a deleted workspace is 404. The body is empty or `{}`."
        ),
        tags=["Agent"],
        parameters=[uuid_path_parameter("id", "Workspace ID (UUID).")],
        # An empty serializer documents no body at all: say what is accepted instead.
        request={
            "application/json": {
                "type": "object",
                "additionalProperties": False,
                "description": "Empty, or `{}`.",
            }
        },
        responses={
            204: None,
            # Not rate limited (above): no 429, which error_responses adds wherever there is a 401.
            **{code: r for code, r in error_responses(400, 401, 404, 415).items() if code != 429},
        },
        examples=[OpenApiExample("Empty", value={}, request_only=True)],
    )
    def post(self, request, id):
        # 401 before anything else, and without a query: a token for another workspace, or for
        # no workspace (a path that is not a UUID), is answered exactly like a forged one.
        workspace_id = request.auth.workspace_id
        if parse_uuid(id) != workspace_id:
            raise InvalidToken("The agent token is not valid.")
        HeartbeatInputSerializer(data=request.data).is_valid(raise_exception=True)
        if not workspace_heartbeat(workspace_id=workspace_id):
            raise NotFound("Workspace not found.")
        return Response(status=status.HTTP_204_NO_CONTENT)
