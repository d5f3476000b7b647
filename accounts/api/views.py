"""The caller's own account: profile, default hardware settings and API tokens.

One viewset per resource (config/api/viewsets.py): ``get_object`` finds it for the caller, methods validate
with a serializer and call a service. Settings and profile exist once per caller, so they have no id.
"""

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view

from accounts.api.serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenCreateInputSerializer,
    ApiTokenSerializer,
    ProfileSerializer,
    UserSettingsInputSerializer,
    UserSettingsPartialInputSerializer,
    UserSettingsSerializer,
)
from accounts.selectors import token_get_for, tokens_of
from accounts.services import api_token_create, api_token_revoke, user_settings_get, user_settings_update
from config.api.conditional import ETAG_HEADER, IF_MATCH_PARAMETER
from config.api.openapi import BAD_PAGE, error_responses, uuid_path_parameter
from config.api.pagination import PAGINATION_PARAMETERS, paginated_response
from config.api.viewsets import (
    DestroyResource,
    ResourceViewSet,
    RetrieveResource,
    UpdateResource,
    list_envelope,
)

EXAMPLE_SETTINGS = {
    "default_hardware": {
        "cpu_kind": "shared",
        "cpus": 2,
        "memory_mb": 2048,
        "volume_size_gb": 10,
        "gpu_kind": None,
    }
}
TOKEN_ID = uuid_path_parameter("id", "Token ID (UUID).")


@extend_schema_view(
    retrieve=extend_schema(
        operation_id="user_settings_retrieve",
        summary="Get your settings",
        parameters=[ETAG_HEADER],
        responses={200: UserSettingsSerializer, **error_responses(401)},
        examples=[OpenApiExample("Settings", value=EXAMPLE_SETTINGS, response_only=True)],
    ),
    partial_update=extend_schema(
        operation_id="user_settings_partial_update",
        summary="Change some of your settings",
        description="The fields given replace the current ones; the others are kept. The resulting "
        "default hardware must be valid as a whole, by the same rules as workspace creation.",
        parameters=[IF_MATCH_PARAMETER, ETAG_HEADER],
        request=UserSettingsPartialInputSerializer,
        responses={200: UserSettingsSerializer, **error_responses(400, 401, 412, 415)},
        examples=[
            OpenApiExample(
                "More memory",
                value={"default_hardware": {"cpus": 4, "memory_mb": 4096}},
                request_only=True,
            )
        ],
    ),
    update=extend_schema(
        operation_id="user_settings_update",
        summary="Replace your settings",
        description="The whole settings object: `default_hardware` with every field (`gpu_kind` may be "
        "omitted, meaning null), valid by the same rules as workspace creation.",
        parameters=[IF_MATCH_PARAMETER, ETAG_HEADER],
        request=UserSettingsInputSerializer,
        responses={200: UserSettingsSerializer, **error_responses(400, 401, 412, 415)},
        examples=[OpenApiExample("Settings", value=EXAMPLE_SETTINGS, request_only=True)],
    ),
)
@extend_schema(tags=["User"])
class UserSettingsViewSet(RetrieveResource, UpdateResource, ResourceViewSet):
    """The caller's default hardware for new workspaces.

    PATCH lays the given fields over the current defaults; PUT replaces the whole object, so it
    needs ``default_hardware`` with every field but ``gpu_kind``, which is null when omitted. Either
    way the result is checked as workspace creation checks hardware (same rules, same codes, with
    fields named ``default_hardware.<field>``), and nothing is stored unless all of it is valid.
    """

    serializer_class = UserSettingsSerializer
    input_serializers = {
        "partial_update": UserSettingsPartialInputSerializer,
        "update": UserSettingsInputSerializer,
    }
    update = UpdateResource.partial_update

    def get_object(self, *, for_update=False):
        return user_settings_get(user=self.request.user, for_update=for_update)

    def perform_update(self, user_settings, data):
        if self.action == "update":  # PUT: the whole default hardware
            return user_settings_update(user=self.request.user, hardware=data["default_hardware"])
        return user_settings_update(user=self.request.user, partial=data.get("default_hardware"))


@extend_schema_view(
    retrieve=extend_schema(
        operation_id="profile_retrieve",
        summary="Who you are",
        description="The user the request's token belongs to.",
        parameters=[ETAG_HEADER],
        responses={200: ProfileSerializer, **error_responses(401)},
    ),
)
@extend_schema(tags=["User"])
class ProfileViewSet(RetrieveResource, ResourceViewSet):
    serializer_class = ProfileSerializer

    def get_object(self, *, for_update=False):
        return self.request.user


# --- API tokens ------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        operation_id="auth_tokens_list",
        summary="List your API tokens",
        description="Your tokens that have not been revoked, newest first. The secrets are never shown "
        "again: each token is recognised by its `name` and `prefix`.",
        parameters=PAGINATION_PARAMETERS,
        responses={
            200: list_envelope("ApiTokenList", "tokens", ApiTokenSerializer(many=True)),
            **error_responses(400, 401, bad_request=BAD_PAGE),
        },
    ),
    create=extend_schema(
        operation_id="auth_tokens_create",
        summary="Create an API token",
        description="The response is the only place the token itself (`token`) ever appears: it is "
        "stored hashed.\n\n"
        "A token cannot outlive the token that made it: if the token of this request expires, the new "
        "one expires at the same moment at the latest (asking for no expiry, or a later one, gets that "
        "moment: the response's `expires_at` is the one that applies), and revoking the token of this "
        "request revokes the new one too, and every token made with it.",
        request=ApiTokenCreateInputSerializer,
        responses={201: ApiTokenCreatedSerializer, **error_responses(400, 401, 415)},
        examples=[
            OpenApiExample(
                "Request", value={"name": "laptop", "expires_at": "2035-01-15T10:30:00Z"}, request_only=True
            )
        ],
    ),
    retrieve=extend_schema(
        operation_id="auth_tokens_retrieve",
        summary="Get an API token",
        description="One of your tokens that has not been revoked, as the list shows it (never its secret); "
        "anyone else's, or a revoked one, is a 404. Its `last_used_at`, and so its `ETag`, changes as it is "
        "used (at most once a minute).",
        parameters=[TOKEN_ID, ETAG_HEADER],
        responses={200: ApiTokenSerializer, **error_responses(401, 404)},
    ),
    destroy=extend_schema(
        operation_id="auth_tokens_destroy",
        summary="Revoke an API token",
        description="The token stops working at once, even if it is the one this request uses.",
        parameters=[TOKEN_ID, IF_MATCH_PARAMETER],
        responses={204: None, **error_responses(401, 404, 412)},
    ),
)
@extend_schema(tags=["Tokens"])
class ApiTokenViewSet(RetrieveResource, DestroyResource, ResourceViewSet):
    serializer_class = ApiTokenSerializer
    lookup_url_kwarg = "id"

    def get_object(self, *, for_update=False):
        return token_get_for(user=self.request.user, token_id=self.kwargs["id"], for_update=for_update)

    def list(self, request):
        return paginated_response(request, tokens_of(request.user), ApiTokenSerializer, "tokens")

    def create(self, request):
        serializer = ApiTokenCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        new = api_token_create(user=request.user, created_by_token=request.auth, **serializer.validated_data)
        return self.created(
            ApiTokenCreatedSerializer(new.token, context={"secret": new.secret}).data,
            f"/auth/tokens/{new.token.id}",
        )

    def perform_destroy(self, token):
        api_token_revoke(token=token)
