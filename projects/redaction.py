"""Repository credentials: a project's ``repo_url`` may carry them, and they are never shown.

``https://user:password@host/x.git`` and ``https://<token>@host/x.git`` are how git takes a
credential in a URL. The stored value keeps it (the clone needs it), but every place that shows a
``repo_url`` or a message that may hold one (the API, for every role; the admin; a workspace's
``error_message`` and events; the logs) shows ``redact_credentials`` of it instead:
``https://user:***@host/x.git``, ``https://***@host/x.git``. An ssh user name (``ssh://git@host``)
is kept: ssh authenticates with keys, so the name is not a secret.

No model imports here: the drivers and the log formatter use it too.
"""

import re

MASK = "***"

# scheme://userinfo@ : the userinfo runs to the LAST "@" before the path, so a password holding a
# raw "@" is masked whole (urllib and git read it that way too).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*)://([^/?#\s]+)@")


def _masked(match: re.Match) -> str:
    scheme, userinfo = match[1], match[2]
    user, colon, _ = userinfo.partition(":")
    if colon:
        masked = f"{user}:{MASK}"
    elif scheme.lower() in ("ssh", "git+ssh", "ssh+git"):
        masked = user
    else:
        masked = MASK  # a lone token in the user name's place (GitHub, GitLab, Bitbucket)
    return f"{scheme}://{masked}@"


def redact_credentials(text: str) -> str:
    """``text`` (a URL, or a message with URLs in it) with every URL's credential masked."""
    return _USERINFO.sub(_masked, text)


def keep_stored_credentials(submitted: str | None, stored: str | None) -> str | None:
    """What to store when a client sends ``submitted`` for a repository URL now ``stored``: the
    stored one when ``submitted`` is exactly its redacted form (a client that read the project and
    sends it back unchanged, or an operator who saves the admin form, keeps the credential);
    otherwise ``submitted`` as sent."""
    if submitted is not None and stored and submitted != stored and submitted == redact_credentials(stored):
        return stored
    return submitted
