from django.db import transaction
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ValidationFailed
from config.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from config.openapi import BAD_HARDWARE, BAD_PAGE, BAD_STATE, error_responses, uuid_path_parameter
from config.pagination import PAGINATION_PARAMETERS, paginated_response
from config.throttling import CreateRateThrottle, UserRateThrottle
from projects.selectors import project_get_for
from workspaces import selectors, services
from workspaces.api.serializers import (
    StatusChangeSerializer,
    WorkspaceCreateInputSerializer,
    WorkspaceEventSerializer,
    WorkspacePlanSerializer,
    WorkspaceSerializer,
    WorkspaceUpdateInputSerializer,
)
from workspaces.services import Actor

EXAMPLE_HARDWARE = {
    "cpu_kind": "shared",
    "cpus": 2,
    "memory_mb": 2048,
    "volume_size_gb": 10,
    "gpu_kind": None,
}
EXAMPLE_WORKSPACE = {
    "id": "b2c3d4e5-6789-01ab-cdef-234567890abc",
    "project_id": "a1b2c3d4-5678-90ab-cdef-1234567890ab",
    "status": "creating",
    "hardware": EXAMPLE_HARDWARE,
    "keep_active": False,
    "machine_id": None,
    "private_ip": None,
    "git_ref": None,
    "preview_token": "ptk_abc123",
    "error_message": None,
    "created_at": "2025-01-15T10:30:00Z",
    "updated_at": "2025-01-15T10:30:00Z",
}
EXAMPLE_RUNNING = {
    **EXAMPLE_WORKSPACE,
    "status": "running",
    "machine_id": "d8d9ee3c2e0d98",
    "private_ip": "fdaa:0:1:a7b:1f6:7f2d:3c21:2",
    "git_ref": "4f1c2a9e8b7d6c5b4a39281706f5e4d3c2b1a098",
    "updated_at": "2025-01-15T10:30:09Z",
}
_ACTOR = {"kind": "token", "user_id": "c3d4e5f6-7890-12ab-cdef-34567890abcd", "email": "ada@example.com"}
EXAMPLE_EVENTS = {
    "events": [
        {
            "id": 1,
            "type": "status",
            "from_status": None,
            "to_status": "creating",
            "actor": {**_ACTOR, "token_prefix": "wsk_5sOxIPuLG8aD"},
            "message": "Workspace created; provisioning queued.",
            "attempt": None,
            "created_at": "2025-01-15T10:30:00Z",
        },
        {
            "id": 2,
            "type": "attempt",
            "from_status": None,
            "to_status": None,
            "actor": {"kind": "system", "user_id": None, "email": None, "token_prefix": None},
            "message": "Provision attempt 1 succeeded.",
            "attempt": {
                "operation": "provision",
                "task_id": "548e11a1-ef4f-4665-b6b8-5168040057b8",
                "request_id": "01GBKBCPJ25X3050E81PA07Q78-iad",
                "duration_ms": 8912,
                "error": None,
            },
            "created_at": "2025-01-15T10:30:09Z",
        },
    ]
}
WORKSPACE_ID = uuid_path_parameter("id", "Workspace ID (UUID).")
PROJECT_ID = uuid_path_parameter("id", "Project ID (UUID).")
DRY_RUN_PARAMETER = OpenApiParameter(
    "dry_run",
    bool,
    description="`true`: run every check (access, hardware, quota) and create nothing; answers 200 with the "
    "hardware that would be used.",
)


def parse_dry_run(request) -> bool:
    value = request.query_params.get("dry_run")
    if value in (None, "false"):
        return False
    if value == "true":
        return True
    raise ValidationFailed.from_details(
        [
            {
                "field": "dry_run",
                "code": "invalid_type",
                "message": f"dry_run must be true or false; got {value!r}.",
                "allowed": {"choices": ["true", "false"]},
            }
        ]
    )


def workspace_list_serializer(name):
    return inline_serializer(name, {"workspaces": WorkspaceSerializer(many=True)})


class WorkspaceListView(APIView):
    @extend_schema(
        operation_id="workspaces_list",
        summary="List your workspaces",
        description="All workspaces in the projects you can see, oldest first.",
        tags=["Workspaces"],
        parameters=[
            OpenApiParameter(
                "status",
                {"$ref": "#/components/schemas/WorkspaceStatus"},
                description="Only workspaces in this status.",
            ),
            OpenApiParameter(
                "project_id", {"type": "string", "format": "uuid"}, description="Only this project's."
            ),
            *PAGINATION_PARAMETERS,
        ],
        responses={
            200: workspace_list_serializer("WorkspaceList"),
            **error_responses(400, 401, bad_request=BAD_PAGE),
        },
    )
    def get(self, request):
        workspaces = selectors.workspace_list(
            user=request.user,
            status=request.query_params.get("status"),
            project_id=request.query_params.get("project_id"),
        )
        return paginated_response(request, workspaces, WorkspaceSerializer, "workspaces")


class ProjectWorkspacesView(APIView):
    throttle_classes = [UserRateThrottle, CreateRateThrottle]

    @extend_schema(
        operation_id="project_workspaces_list",
        summary="List a project's workspaces",
        description="The project's workspaces, oldest first, whoever created them.",
        tags=["Workspaces"],
        parameters=[PROJECT_ID, *PAGINATION_PARAMETERS],
        responses={
            200: workspace_list_serializer("ProjectWorkspaceList"),
            **error_responses(400, 401, 404, bad_request=BAD_PAGE),
        },
    )
    def get(self, request, id):
        project = project_get_for(user=request.user, project_id=id)
        return paginated_response(
            request, selectors.project_workspaces(project=project), WorkspaceSerializer, "workspaces"
        )

    @extend_schema(
        operation_id="workspaces_create",
        summary="Create Workspace",
        description=(
            "Creates a new workspace in the specified project. The workspace will be provisioned with the given "
            "hardware configuration or your default settings. It is returned in `creating`; poll "
            "`GET /workspaces/{id}` until it is `running` (with `machine_id` and `private_ip`) or `error` "
            "(with `error_message`)."
        ),
        tags=["Workspaces"],
        parameters=[PROJECT_ID, DRY_RUN_PARAMETER, IDEMPOTENCY_PARAMETER],
        request=WorkspaceCreateInputSerializer,
        responses={
            201: WorkspaceSerializer,
            200: OpenApiResponse(
                WorkspacePlanSerializer, description="`dry_run=true`: what would be created."
            ),
            **error_responses(400, 401, 403, 404, 409, 415, 422, 429, bad_request=BAD_HARDWARE),
        },
        examples=[
            OpenApiExample(
                "Request", value={"hardware": EXAMPLE_HARDWARE, "keep_active": False}, request_only=True
            ),
            OpenApiExample("Created", response_only=True, status_codes=["201"], value=EXAMPLE_WORKSPACE),
        ],
    )
    @idempotent
    def post(self, request, id):
        # One transaction: the project's access check also takes the create's locks (one round trip).
        with transaction.atomic():
            project = services.workspace_create_project_lock(user=request.user, project_id=id)
            serializer = WorkspaceCreateInputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            if parse_dry_run(request):
                hardware = services.workspace_plan(
                    user=request.user, hardware=serializer.validated_data.get("hardware")
                )
                return Response(
                    {"hardware": hardware.as_dict(), "keep_active": serializer.validated_data["keep_active"]}
                )
            workspace = services.workspace_create(
                project=project,
                user=request.user,
                hardware=serializer.validated_data.get("hardware"),
                keep_active=serializer.validated_data["keep_active"],
                actor=Actor.for_request(request),
                locked=True,
            )
        return Response(
            WorkspaceSerializer(workspace).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/workspaces/{workspace.id}"},
        )


class WorkspaceDetailView(APIView):
    @extend_schema(
        operation_id="workspaces_retrieve",
        summary="Get a workspace",
        description=(
            "A workspace in a project you can see. Poll it after a create, start or stop: `status` moves "
            "through `creating`/`starting` to `running`, or `stopping` to `stopped`; on a failure it is "
            "`error` (or `stop_failed`) with `error_message`. `machine_id`, `private_ip` and `git_ref` "
            "are null until the machine runs."
        ),
        tags=["Workspaces"],
        parameters=[WORKSPACE_ID],
        responses={200: WorkspaceSerializer, **error_responses(401, 404)},
        examples=[OpenApiExample("Running", value=EXAMPLE_RUNNING, response_only=True)],
    )
    def get(self, request, id):
        return Response(
            WorkspaceSerializer(selectors.workspace_get_for(user=request.user, workspace_id=id)).data
        )

    @extend_schema(
        operation_id="workspaces_partial_update",
        summary="Change a workspace",
        description="Only `keep_active` can be changed. Counts as activity for idle auto-stop.",
        tags=["Workspaces"],
        parameters=[WORKSPACE_ID],
        request=WorkspaceUpdateInputSerializer,
        responses={200: WorkspaceSerializer, **error_responses(400, 401, 403, 404, 415)},
    )
    def patch(self, request, id):
        workspace = selectors.workspace_get_for(user=request.user, workspace_id=id, action="manage_workspace")
        serializer = WorkspaceUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        workspace = services.workspace_update(
            workspace=workspace, actor=Actor.for_request(request), **serializer.validated_data
        )
        return Response(WorkspaceSerializer(workspace).data)

    @extend_schema(
        operation_id="workspaces_destroy",
        summary="Delete a workspace",
        description="The workspace is gone from the API at once; its machine and volume are destroyed in the background.",
        tags=["Workspaces"],
        parameters=[WORKSPACE_ID],
        responses={204: None, **error_responses(401, 403, 404)},
    )
    def delete(self, request, id):
        workspace = selectors.workspace_get_for(user=request.user, workspace_id=id, action="manage_workspace")
        services.workspace_delete(workspace=workspace, actor=Actor.for_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WorkspaceStartView(APIView):
    @extend_schema(
        operation_id="workspaces_start",
        summary="Start a workspace",
        description="Starts a `stopped` workspace, or retries one in `error`. It moves to `starting`, then `running`.",
        tags=["Workspaces"],
        request=None,
        parameters=[WORKSPACE_ID, IDEMPOTENCY_PARAMETER],
        responses={
            200: StatusChangeSerializer,
            **error_responses(400, 401, 403, 404, 409, 422, 429, bad_request=BAD_STATE),
        },
        examples=[OpenApiExample("Starting", value={"status": "starting"}, response_only=True)],
    )
    @idempotent
    def post(self, request, id):
        workspace = selectors.workspace_get_for(user=request.user, workspace_id=id, action="manage_workspace")
        workspace = services.workspace_start(workspace=workspace, actor=Actor.for_request(request))
        return Response({"status": workspace.status})


class WorkspaceStopView(APIView):
    @extend_schema(
        operation_id="workspaces_stop",
        summary="Stop a workspace",
        description="Stops a `running` workspace (or retries a `stop_failed` one); its volume survives.",
        tags=["Workspaces"],
        request=None,
        parameters=[WORKSPACE_ID, IDEMPOTENCY_PARAMETER],
        responses={
            200: StatusChangeSerializer,
            **error_responses(400, 401, 403, 404, 409, 422, 429, bad_request=BAD_STATE),
        },
        examples=[OpenApiExample("Stopping", value={"status": "stopping"}, response_only=True)],
    )
    @idempotent
    def post(self, request, id):
        workspace = selectors.workspace_get_for(user=request.user, workspace_id=id, action="manage_workspace")
        workspace = services.workspace_stop(workspace=workspace, actor=Actor.for_request(request))
        return Response({"status": workspace.status})


class WorkspaceEventsView(APIView):
    @extend_schema(
        operation_id="workspaces_events_list",
        summary="A workspace's timeline",
        description="Every status change, step and error, oldest first, with who or what acted.",
        tags=["Workspaces"],
        parameters=[WORKSPACE_ID, *PAGINATION_PARAMETERS],
        responses={
            200: inline_serializer("WorkspaceEventList", {"events": WorkspaceEventSerializer(many=True)}),
            **error_responses(400, 401, 404, bad_request=BAD_PAGE),
        },
        examples=[OpenApiExample("Timeline", value=EXAMPLE_EVENTS, response_only=True)],
    )
    def get(self, request, id):
        workspace = selectors.workspace_get_for(user=request.user, workspace_id=id)
        return paginated_response(
            request, selectors.workspace_events(workspace=workspace), WorkspaceEventSerializer, "events"
        )
