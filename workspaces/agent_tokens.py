"""Per-workspace agent tokens: how a workspace's machine proves which workspace it is.

A token is ``wsa_<workspace id hex>_<HMAC-SHA256(API_TOKEN_PEPPER, "agent:<workspace id>") hex>``.
It is derived, not stored: provisioning can hand it to the machine (``WORKSPACE_AGENT_TOKEN``) on
every create or start without a secret in the database, and checking one needs no query at all.
Without the pepper it cannot be guessed. Changing ``API_TOKEN_PEPPER`` invalidates every agent token
together with every API token; running machines get the new one when they are next created.

No model imports: pure functions over strings, like ``accounts.tokens``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid

from django.conf import settings

from config.values import parse_uuid

PREFIX = "wsa_"
_FORMAT = re.compile(rf"^{PREFIX}([0-9a-f]{{32}})_([0-9a-f]{{64}})$")


def _mac(workspace_id: uuid.UUID) -> str:
    # "agent:" keeps these MACs apart from the API token digests made with the same pepper.
    message = f"agent:{workspace_id}".encode()
    return hmac.new(settings.API_TOKEN_PEPPER.encode(), message, hashlib.sha256).hexdigest()


def agent_token_for(workspace_id: uuid.UUID | str) -> str:
    """The agent token of one workspace. The same id always gives the same token."""
    parsed = parse_uuid(workspace_id)
    if parsed is None:
        raise ValueError(f"{workspace_id!r} is not a workspace id (a UUID).")
    return f"{PREFIX}{parsed.hex}_{_mac(parsed)}"


def agent_token_workspace_id(token: str) -> uuid.UUID | None:
    """The workspace a token was made for, if it is a genuine agent token (its MAC checks out)."""
    match = _FORMAT.match(token)
    if match is None:
        return None
    workspace_id = parse_uuid(match.group(1))
    return workspace_id if agent_token_matches(workspace_id, token) else None


def agent_token_matches(workspace_id: uuid.UUID | str, token: str) -> bool:
    """Whether ``token`` is the agent token of ``workspace_id``, compared in constant time."""
    parsed = parse_uuid(workspace_id)
    if parsed is None or not isinstance(token, str):
        return False
    return hmac.compare_digest(agent_token_for(parsed).encode(), token.encode())
