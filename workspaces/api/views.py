from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.openapi import error_responses, uuid_path_parameter
from projects.selectors import project_get_for
from workspaces.api.serializers import WorkspaceCreateInputSerializer, WorkspaceSerializer
from workspaces.selectors import workspace_get_for
from workspaces.services import Actor, workspace_create

EXAMPLE_HARDWARE = {
    "cpu_kind": "shared",
    "cpus": 2,
    "memory_mb": 2048,
    "volume_size_gb": 10,
    "gpu_kind": None,
}


class ProjectWorkspacesView(APIView):
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
        parameters=[uuid_path_parameter("id", "Project ID (UUID).")],
        request=WorkspaceCreateInputSerializer,
        responses={201: WorkspaceSerializer, **error_responses(400, 401, 403, 404, 415)},
        examples=[
            OpenApiExample(
                "Request", value={"hardware": EXAMPLE_HARDWARE, "keep_active": False}, request_only=True
            ),
            OpenApiExample(
                "Created",
                response_only=True,
                status_codes=["201"],
                value={
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
                },
            ),
        ],
    )
    def post(self, request, id):
        project = project_get_for(user=request.user, project_id=id, action="create_workspace")
        serializer = WorkspaceCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        workspace = workspace_create(
            project=project,
            user=request.user,
            hardware=serializer.validated_data.get("hardware"),
            keep_active=serializer.validated_data["keep_active"],
            actor=Actor.for_request(request),
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
        tags=["Workspaces"],
        parameters=[uuid_path_parameter("id", "Workspace ID (UUID).")],
        responses={200: WorkspaceSerializer, **error_responses(401, 404)},
    )
    def get(self, request, id):
        return Response(WorkspaceSerializer(workspace_get_for(user=request.user, workspace_id=id)).data)
