"""Format rules for project fields, shared by the API and the admin.

Each rule is one regular expression that the schema shows as the field's ``pattern``, so that
clients can check a value before sending it, and the server accepts exactly what matches. They use
explicit ASCII classes, not ``\\w`` or ``\\s``, which mean different things in Python's regular
expressions and in the ECMA ones that JSON Schema validators use.
"""

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

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


def validate_branch(value: str) -> None:
    if len(value) > 255 or not _BRANCH.fullmatch(value) or value.endswith(".lock"):
        raise ValidationError("default_branch is not a valid git branch name.", code="invalid_branch")
