"""Making and checking API token secrets. No model imports: pure functions over strings."""

import hashlib
import hmac
import re
import secrets
import string

from django.conf import settings

PREFIX = "wsk_"
KEY_LENGTH = 12
SECRET_LENGTH = 40  # 40 base62 characters: about 238 bits of entropy
_ALPHABET = string.ascii_letters + string.digits
_FORMAT = re.compile(rf"^{PREFIX}([A-Za-z0-9]{{{KEY_LENGTH}}})_([A-Za-z0-9]{{{SECRET_LENGTH}}})$")


def generate() -> tuple[str, str]:
    """A new token and its public key part."""
    key = "".join(secrets.choice(_ALPHABET) for _ in range(KEY_LENGTH))
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))
    return f"{PREFIX}{key}_{secret}", key


def parse_key(token: str) -> str | None:
    """The key part of a well-formed token, or None."""
    match = _FORMAT.match(token)
    return match.group(1) if match else None


def digest(token: str) -> str:
    return hmac.new(settings.API_TOKEN_PEPPER.encode(), token.encode(), hashlib.sha256).hexdigest()


def matches(token: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(token), stored_digest)
