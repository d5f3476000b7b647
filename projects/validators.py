"""Format rules for project fields, shared by the API and the admin."""

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

# scp-like git addresses: git@github.com:org/repo.git
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:[^\s]+$")
# The parts of `git check-ref-format` that matter for a branch name a user types.
_BAD_REF = re.compile(r"(^[-/.])|(\.\.)|([\s~^:?*\[\\\x00-\x1f\x7f])|(@\{)|([/.]$)|(\.lock$)|(//)")


# Branch names: dot-, slash- or dash-separated words. Stricter than git (which also takes `+`, `@`, ...),
# so that one pattern, shown in the schema, says what is accepted.
BRANCH_SCHEMA_PATTERN = r"^\w+(?:[./-]\w+)*$"
_BRANCH = re.compile(BRANCH_SCHEMA_PATTERN)


def validate_repo_url(value: str) -> None:
    schemes = settings.PROJECT_REPO_URL_SCHEMES
    if "ssh" in schemes and _SCP_LIKE.match(value):
        return
    parts = urlsplit(value)
    if (
        parts.scheme not in schemes
        or (parts.scheme != "file" and not parts.netloc)
        # The same rule as the schema's pattern, so that clients can check a URL before sending it.
        or (parts.scheme != "file" and not re.fullmatch(repo_url_schema_pattern(), value))
    ):
        raise ValidationError(
            f"repo_url must be a git URL with one of the schemes {', '.join(schemes)}.",
            code="invalid_repo_url",
        )


def validate_branch(value: str) -> None:
    if not value or len(value) > 255 or _BAD_REF.search(value) or not _BRANCH.fullmatch(value):
        raise ValidationError("default_branch is not a valid git branch name.", code="invalid_branch")


def repo_url_schema_pattern() -> str:
    """A pattern for the schema: a subset of what ``validate_repo_url`` accepts, so that any value
    matching it is accepted (generated clients and fuzzers build values from it)."""
    schemes = [scheme for scheme in settings.PROJECT_REPO_URL_SCHEMES if scheme != "file"]
    alternatives = [rf"(?:{'|'.join(schemes)})://[\w.@:-]+(?:/\S*)?"] if schemes else []
    if "ssh" in schemes:
        alternatives.append(r"[\w.-]+@[\w.-]+:\S+")
    return f"^(?:{'|'.join(alternatives)})$" if alternatives else "^$"
