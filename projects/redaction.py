"""Repository credentials: a project's ``repo_url`` may carry them, and they are never shown.

``https://user:password@host/x.git`` and ``https://<token>@host/x.git`` are how git takes a
credential in a URL. The stored value keeps it (the clone needs it), but every place that shows a
``repo_url`` or a message that may hold one (the API, for every role; the admin; a workspace's
``error_message`` and events; the logs) shows ``redact_credentials`` of it instead:
``https://user:***@host/x.git``, ``https://***@host/x.git``. An ssh user name (``ssh://git@host``)
is kept: ssh authenticates with keys, so the name is not a secret.

The masking itself is ``config.security.redaction`` (the log formatter uses it too); this module adds what a
project's ``repo_url`` needs on top of it. No model imports here: the drivers use it too.
"""

from config.security.redaction import MASK, redact_credentials

__all__ = ["MASK", "keep_stored_credentials", "redact_credentials"]


def keep_stored_credentials(submitted: str | None, stored: str | None) -> str | None:
    """What to store when a client sends ``submitted`` for a repository URL now ``stored``: the
    stored one when ``submitted`` is exactly its redacted form (a client that read the project and
    sends it back unchanged, or an operator who saves the admin form, keeps the credential);
    otherwise ``submitted`` as sent."""
    if submitted is not None and stored and submitted != stored and submitted == redact_credentials(stored):
        return stored
    return submitted
