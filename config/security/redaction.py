"""The one masking of a credential in a URL, for every layer that shows or logs one.

``https://user:password@host/x.git`` and ``https://<token>@host/x.git`` are how git takes a
credential in a URL: ``redact_credentials`` shows them as ``https://user:***@host/x.git`` and
``https://***@host/x.git``. An ssh user name (``ssh://git@host``) is kept: ssh authenticates with
keys, so the name is not a secret.

It lives in config, below the apps, because the log formatter (``config.operations.logs``) uses it as well as
projects (a project's ``repo_url``, ``projects.redaction``) and the drivers; it imports nothing.
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
