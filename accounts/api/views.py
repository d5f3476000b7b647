from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

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
from config.openapi import BAD_PAGE, error_responses, uuid_path_parameter
from config.pagination import PAGINATION_PARAMETERS, paginated_response

EXAMPLE_SETTINGS = {
    "default_hardware": {
        "cpu_kind": "shared",
        "cpus": 2,
        "memory_mb": 2048,
        "volume_size_gb": 10,
        "gpu_kind": None,
    }
}


class UserSettingsView(APIView):
    """The caller's default hardware for new workspaces.

    PATCH lays the given fields over the current defaults; PUT replaces the whole object, so it
    needs ``default_hardware`` with every field but ``gpu_kind``, which is null when omitted. Either
    way the result is checked as workspace creation checks hardware (same rules, same codes, with
    fields named ``default_hardware.<field>``), and nothing is stored unless all of it is valid.
    """

    @extend_schema(
        operation_id="user_settings_retrieve",
        summary="Get your settings",
        tags=["User"],
        responses={200: UserSettingsSerializer, **error_responses(401)},
        examples=[OpenApiExample("Settings", value=EXAMPLE_SETTINGS, response_only=True)],
    )
    def get(self, request):
        return Response(UserSettingsSerializer(user_settings_get(user=request.user)).data)

    @extend_schema(
        operation_id="user_settings_partial_update",
        summary="Change some of your settings",
        description="The fields given replace the current ones; the others are kept. The resulting "
        "default hardware must be valid as a whole, by the same rules as workspace creation.",
        tags=["User"],
        request=UserSettingsPartialInputSerializer,
        responses={200: UserSettingsSerializer, **error_responses(400, 401, 415)},
        examples=[
            OpenApiExample(
                "More memory",
                value={"default_hardware": {"cpus": 4, "memory_mb": 4096}},
                request_only=True,
            )
        ],
    )
    def patch(self, request):
        serializer = UserSettingsPartialInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user_settings = user_settings_update(
            user=request.user, partial=serializer.validated_data.get("default_hardware")
        )
        return Response(UserSettingsSerializer(user_settings).data)

    @extend_schema(
        operation_id="user_settings_update",
        summary="Replace your settings",
        description="The whole settings object: `default_hardware` with every field (`gpu_kind` may be "
        "omitted, meaning null), valid by the same rules as workspace creation.",
        tags=["User"],
        request=UserSettingsInputSerializer,
        responses={200: UserSettingsSerializer, **error_responses(400, 401, 415)},
        examples=[OpenApiExample("Settings", value=EXAMPLE_SETTINGS, request_only=True)],
    )
    def put(self, request):
        serializer = UserSettingsInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user_settings = user_settings_update(
            user=request.user, hardware=serializer.validated_data["default_hardware"]
        )
        return Response(UserSettingsSerializer(user_settings).data)


class ProfileView(APIView):
    @extend_schema(
        operation_id="profile_retrieve",
        summary="Who you are",
        description="The user the request's token belongs to.",
        tags=["User"],
        responses={200: ProfileSerializer, **error_responses(401)},
    )
    def get(self, request):
        return Response(ProfileSerializer(request.user).data)


# --- API tokens ------------------------------------------------------------------------------------


class ApiTokenListView(APIView):
    @extend_schema(
        operation_id="auth_tokens_list",
        summary="List your API tokens",
        description="Your tokens that have not been revoked, newest first. The secrets are never shown "
        "again: each token is recognised by its `name` and `prefix`.",
        tags=["Tokens"],
        parameters=PAGINATION_PARAMETERS,
        responses={
            200: inline_serializer("ApiTokenList", {"tokens": ApiTokenSerializer(many=True)}),
            **error_responses(400, 401, bad_request=BAD_PAGE),
        },
    )
    def get(self, request):
        return paginated_response(request, tokens_of(request.user), ApiTokenSerializer, "tokens")

    @extend_schema(
        operation_id="auth_tokens_create",
        summary="Create an API token",
        description="The response is the only place the token itself (`token`) ever appears: it is "
        "stored hashed.\n\n"
        "A token cannot outlive the token that made it: if the token of this request expires, the new "
        "one expires at the same moment at the latest (asking for no expiry, or a later one, gets that "
        "moment: the response's `expires_at` is the one that applies), and revoking the token of this "
        "request revokes the new one too, and every token made with it.",
        tags=["Tokens"],
        request=ApiTokenCreateInputSerializer,
        responses={201: ApiTokenCreatedSerializer, **error_responses(400, 401, 415)},
        examples=[
            OpenApiExample(
                "Request", value={"name": "laptop", "expires_at": "2035-01-15T10:30:00Z"}, request_only=True
            )
        ],
    )
    def post(self, request):
        serializer = ApiTokenCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        new = api_token_create(user=request.user, created_by_token=request.auth, **serializer.validated_data)
        return Response(
            ApiTokenCreatedSerializer(new.token, context={"secret": new.secret}).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/auth/tokens/{new.token.id}"},
        )


class ApiTokenDetailView(APIView):
    @extend_schema(
        operation_id="auth_tokens_destroy",
        summary="Revoke an API token",
        description="The token stops working at once, even if it is the one this request uses.",
        tags=["Tokens"],
        parameters=[uuid_path_parameter("id", "Token ID (UUID).")],
        responses={204: None, **error_responses(401, 404)},
    )
    def delete(self, request, id):
        api_token_revoke(token=token_get_for(user=request.user, token_id=id))
        return Response(status=status.HTTP_204_NO_CONTENT)
