"""``Authorization: Bearer wsa_...``: authentication for a workspace's machine (its agent).

Used only by the heartbeat endpoint, which sets it as its only authentication class, so a user's
API token is never accepted there, and an agent token is never accepted anywhere else (the default
``BearerTokenAuthentication`` does not know its format). Checking an agent token is an HMAC over its
own workspace id: no database query, so a caller without a valid token learns nothing about which
workspaces exist.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from accounts import tokens as api_tokens
from accounts.authentication import InvalidToken, bearer_credentials
from workspaces.agent_tokens import agent_token_workspace_id


@dataclass(frozen=True)
class WorkspaceAgent:
    """``request.auth`` of an agent request: the machine of one workspace."""

    workspace_id: uuid.UUID
    is_authenticated = True


class AgentTokenAuthentication(BaseAuthentication):
    """Authenticates a workspace's agent by its agent token; ``request.auth`` is a ``WorkspaceAgent``
    and ``request.user`` is None (an agent acts for no user).

    Whether the token is for the workspace in the path is the view's check (``WorkspaceAgentOnly``
    only says that some workspace's agent is calling). A missing header lets DRF answer 401
    ``not_authenticated``; anything else that is not a genuine agent token is 401 ``invalid_token``.
    Both carry ``WWW-Authenticate: Bearer``.
    """

    def authenticate(self, request):
        credentials = bearer_credentials(request, what="agent token")
        if credentials is None:
            return None
        if credentials.startswith(api_tokens.PREFIX):
            raise InvalidToken(
                "A user's API token cannot send heartbeats; use the workspace's agent token "
                "(WORKSPACE_AGENT_TOKEN on its machine)."
            )
        workspace_id = agent_token_workspace_id(credentials)
        if workspace_id is None:
            raise InvalidToken("The agent token is not valid.")
        return None, WorkspaceAgent(workspace_id)

    def authenticate_header(self, request):
        return 'Bearer realm="workspace-agent"'


class WorkspaceAgentOnly(BasePermission):
    """Only a workspace's agent. Without one DRF answers 401 (the request was not authenticated)."""

    def has_permission(self, request, view):
        return isinstance(request.auth, WorkspaceAgent)


class AgentTokenScheme(OpenApiAuthenticationExtension):
    target_class = AgentTokenAuthentication
    name = "AgentToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A workspace's agent token, `Authorization: Bearer wsa_...`, given to its "
            "machine as `WORKSPACE_AGENT_TOKEN`. User API tokens are not accepted.",
        }
