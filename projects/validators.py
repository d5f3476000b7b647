"""Format rules for project fields, shared by the API and the admin.

Each rule is one regular expression that the schema shows as the field's ``pattern``, so that
clients can check a value before sending it, and the server accepts exactly what matches. They use
explicit ASCII classes, not ``\\w`` or ``\\s``, which mean different things in Python's regular
expressions and in the ECMA ones that JSON Schema validators use.
"""

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from config.security import egress

_WORD = "[A-Za-z0-9_]"
_VISIBLE = "[!-~]"  # visible ASCII: no spaces, no control characters

# Branch names: dot-, slash- or dash-separated words. Stricter than git (which also takes `+`, `@`,
# non-ASCII letters...), and free of everything `git check-ref-format` refuses but one: `.lock` at the end.
BRANCH_SCHEMA_PATTERN = rf"^{_WORD}+(?:[./-]{_WORD}+)*$"
_BRANCH = re.compile(BRANCH_SCHEMA_PATTERN)


def repo_url_schema_pattern() -> str:
    """``<scheme>://host[/path]`` for the allowed network schemes, or scp-like ``user@host:path``
    (git@github.com:org/repo.git) when ssh is allowed. ``file://`` (off by default) is checked apart."""
    schemes = [scheme for scheme in settings.PROJECT_REPO_URL_SCHEMES if scheme != "file"]
    alternatives = [rf"(?:{'|'.join(schemes)})://[A-Za-z0-9._~@:-]+(?:/{_VISIBLE}*)?"] if schemes else []
    if "ssh" in schemes:
        alternatives.append(rf"[A-Za-z0-9._-]+@[A-Za-z0-9._-]+:{_VISIBLE}+")
    return f"^(?:{'|'.join(alternatives)})$" if alternatives else "^$"


_SCP_LIKE = re.compile(r"(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9._-]+):(?P<path>.+)")
_DEFAULT_PORTS = {"https": 443, "http": 80, "ssh": 22, "git": 9418}


@dataclass(frozen=True)
class RepoLocation:
    """Where a valid repo_url points: its scheme (``ssh`` for the scp-like form), host and port.
    ``host`` is empty for ``file``."""

    scheme: str
    host: str
    port: int | None


def repo_location(value: str) -> RepoLocation:
    """The scheme, host and port of a repo_url that passed ``validate_repo_url``."""
    if "://" not in value and (scp := _SCP_LIKE.fullmatch(value)):
        return RepoLocation("ssh", scp["host"], _DEFAULT_PORTS["ssh"])
    parts = urlsplit(value)
    if parts.scheme in ("file", ""):  # a plain path is a local clone too: git counts it as "file"
        return RepoLocation("file", "", None)
    try:
        port = parts.port
    except ValueError:
        port = None
    return RepoLocation(parts.scheme, parts.hostname or "", port or _DEFAULT_PORTS.get(parts.scheme))


def validate_repo_url(value: str) -> None:
    schemes = settings.PROJECT_REPO_URL_SCHEMES
    parts = urlsplit(value)
    if "file" in schemes and parts.scheme == "file" and value.isprintable():
        return
    if not re.fullmatch(repo_url_schema_pattern(), value):
        raise ValidationError(
            f"repo_url must be a git URL with one of the schemes {', '.join(schemes)}.",
            code="invalid_repo_url",
        )
    location = repo_location(value)
    if not location.host:
        raise ValidationError("repo_url has no host.", code="invalid_repo_url")
    # A host written as an address is checked now; a name is resolved and checked at clone time
    # (it may resolve differently later), against the same policy.
    try:
        egress.check_literal(location.host)
    except egress.EgressRefused as exc:
        raise ValidationError(
            f"repo_url is refused: {exc.message}. The control plane does not connect to internal "
            "addresses on a user's behalf.",
            code="egress_refused",
        ) from None


def validate_branch(value: str) -> None:
    if len(value) > 255 or not _BRANCH.fullmatch(value) or value.endswith(".lock"):
        raise ValidationError("default_branch is not a valid git branch name.", code="invalid_branch")
