"""``Authorization: Bearer <token>`` authentication for the API (RFC 6750)."""

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from accounts import tokens
from accounts.models import ApiToken
from accounts.services import api_token_touch


class InvalidToken(exceptions.AuthenticationFailed):
    default_code = "invalid_token"


def bearer_credentials(request, what: str = "token") -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None without the header. A header
    that is there but is not a Bearer token is ``InvalidToken``, with a sentence saying why."""
    header = get_authorization_header(request)
    if not header:
        return None
    try:
        scheme, _, credentials = header.decode("ascii").partition(" ")
    except UnicodeDecodeError:
        raise InvalidToken("The Authorization header is not valid ASCII.") from None
    if scheme.lower() != "bearer":
        raise InvalidToken(f"Use the Bearer scheme: 'Authorization: Bearer <{what}>'.")
    credentials = credentials.strip()
    if not credentials:
        raise InvalidToken("The Authorization header has no token after 'Bearer'.")
    return credentials


class BearerTokenAuthentication(BaseAuthentication):
    """Authenticates a request by one of the user's API tokens.

    ``request.auth`` is the ``ApiToken``, so that services can record which token acted.
    A missing header lets DRF answer 401 ``not_authenticated``; anything else that is not a usable
    token is 401 ``invalid_token``. Both carry ``WWW-Authenticate: Bearer``.
    """

    keyword = "Bearer"

    def authenticate(self, request):
        credentials = bearer_credentials(request)
        if credentials is None:
            return None
        key = tokens.parse_key(credentials)
        if key is None:
            raise InvalidToken("The token is malformed.")
        token = (
            ApiToken.objects.select_related("user", "user__settings", "user__quota").filter(key=key).first()
        )
        if token is None or not tokens.matches(credentials, token.digest):
            raise InvalidToken("The token is not valid.")
        if token.revoked_at is not None:
            raise InvalidToken("The token has been revoked.")
        if not token.is_usable:
            raise InvalidToken("The token has expired.")
        if not token.user.is_active:
            raise InvalidToken("The token's user is deactivated.")
        api_token_touch(token=token)
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
