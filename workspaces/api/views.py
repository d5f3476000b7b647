"""The workspaces API: two viewsets, one per URL family, each operation a method or an action.

``ProjectWorkspaceViewSet`` serves ``/projects/{id}/workspaces`` (list, create, and the create's dry
run ``/plan``); ``WorkspaceViewSet`` serves ``/workspaces`` and ``/workspaces/{id}`` with its
lifecycle actions. The caller's scope is applied in one place (``get_object``, through the scoping
selector); services decide, serializers validate, and the methods below only connect them. The
schema is declared with ``extend_schema_view`` at each class, so the method bodies stay short.
(The agent's heartbeat, with its own authentication, is an APIView in heartbeat.py.)
"""

from django.db import transaction
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api.conditional import ETAG_HEADER, IF_MATCH_PARAMETER, etag_for
from config.api.errors import ValidationFailed
from config.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from config.api.openapi import BAD_HARDWARE, BAD_PAGE, BAD_STATE, error_responses, uuid_path_parameter
from config.api.pagination import PAGINATION_PARAMETERS, paginated_response
from config.api.throttling import CreateRateThrottle, UserRateThrottle
from config.api.viewsets import DestroyResource, ResourceViewSet, RetrieveResource, UpdateResource
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
from workspaces.models import Workspace
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
                "number": 1,
                "outcome": "succeeded",
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
DRY_RUN_COMPATIBILITY = (
    "`?dry_run=true` on `POST /projects/{id}/workspaces` still answers as `workspaces_plan` does, "
    "kept for compatibility; typed clients use `workspaces_plan`."
)


def parse_dry_run(request) -> bool:
    """``?dry_run=`` on the create (kept for compatibility, no longer documented): strict, like
    every other parameter."""
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


def validated(serializer_class, request) -> dict:
    """The request body, checked by ``serializer_class`` (a 400 in our error shape if it is not valid)."""
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def workspace_list_serializer(name):
    # The envelope is one object: many=False keeps drf-spectacular from wrapping a viewset's `list`
    # answer in an array.
    return extend_schema_serializer(many=False)(
        inline_serializer(name, {"workspaces": WorkspaceSerializer(many=True)})
    )


def _lifecycle_schema(operation_id: str, summary: str, description: str, example: str):
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description=description,
        tags=["Workspaces"],
        request=None,
        parameters=[WORKSPACE_ID, IDEMPOTENCY_PARAMETER, ETAG_HEADER],
        responses={
            200: StatusChangeSerializer,
            **error_responses(400, 401, 403, 404, 409, 422, 429, bad_request=BAD_STATE),
        },
        examples=[OpenApiExample(example.capitalize(), value={"status": example}, response_only=True)],
    )


CREATE_REQUEST_EXAMPLE = OpenApiExample(
    "Request", value={"hardware": EXAMPLE_HARDWARE, "keep_active": False}, request_only=True
)


@extend_schema_view(
    list=extend_schema(
        operation_id="project_workspaces_list",
        summary="List a project's workspaces",
        description="The project's workspaces, oldest first, whoever created them.",
        tags=["Workspaces"],
        parameters=[PROJECT_ID, *PAGINATION_PARAMETERS],
        responses={
            200: workspace_list_serializer("ProjectWorkspaceList"),
            **error_responses(400, 401, 404, bad_request=BAD_PAGE),
        },
    ),
    create=extend_schema(
        operation_id="workspaces_create",
        summary="Create Workspace",
        description=(
            "Creates a new workspace in the specified project. The workspace will be provisioned with the given "
            "hardware configuration or your default settings. It is returned in `creating`; poll "
            "`GET /workspaces/{id}` until it is `running` (with `machine_id` and `private_ip`) or `error` "
            "(with `error_message`). To run every check without creating anything, use `workspaces_plan`. "
            + DRY_RUN_COMPATIBILITY
        ),
        tags=["Workspaces"],
        parameters=[PROJECT_ID, IDEMPOTENCY_PARAMETER],
        request=WorkspaceCreateInputSerializer,
        responses={
            201: WorkspaceSerializer,
            **error_responses(400, 401, 403, 404, 409, 415, 422, 429, bad_request=BAD_HARDWARE),
        },
        examples=[
            CREATE_REQUEST_EXAMPLE,
            OpenApiExample("Created", response_only=True, status_codes=["201"], value=EXAMPLE_WORKSPACE),
        ],
    ),
    plan=extend_schema(
        operation_id="workspaces_plan",
        summary="Plan a workspace (dry run)",
        description=(
            "The create's dry run: the same body and every check the create makes (access to the project, "
            "hardware rules, your quota), with the same errors, and nothing created. Answers with the "
            "hardware a create would use (your defaults with the request's fields laid over them). "
            + DRY_RUN_COMPATIBILITY
        ),
        tags=["Workspaces"],
        parameters=[PROJECT_ID],
        request=WorkspaceCreateInputSerializer,
        responses={
            200: OpenApiResponse(
                WorkspacePlanSerializer,
                description="What a create with this body would make; nothing was created.",
            ),
            **error_responses(400, 401, 403, 404, 415, 429, bad_request=BAD_HARDWARE),
        },
        examples=[
            CREATE_REQUEST_EXAMPLE,
            OpenApiExample(
                "Plan", response_only=True, value={"hardware": EXAMPLE_HARDWARE, "keep_active": False}
            ),
        ],
    ),
)
class ProjectWorkspaceViewSet(viewsets.ViewSet):
    """``/projects/{id}/workspaces``: a project's workspaces, and creating one."""

    # Creating workspaces starts machines: the create has its own, stricter limit (POSTs only).
    throttle_classes = [UserRateThrottle, CreateRateThrottle]

    def list(self, request, id):
        project = project_get_for(user=request.user, project_id=id)
        return paginated_response(
            request, selectors.project_workspaces(project=project), WorkspaceSerializer, "workspaces"
        )

    @idempotent
    def create(self, request, id):
        if parse_dry_run(request):
            return self.plan(request, id)
        # One transaction: the access check takes the create's locks, before the body is read.
        with transaction.atomic():
            lock = services.workspace_create_lock(user=request.user, project_id=id)
            data = validated(WorkspaceCreateInputSerializer, request)
            workspace = services.workspace_create(
                lock=lock,
                hardware=data.get("hardware"),
                keep_active=data["keep_active"],
                actor=Actor.for_request(request),
            )
        return Response(
            WorkspaceSerializer(workspace).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/workspaces/{workspace.id}"},
        )

    # A plan starts no machine: the general rate limit only (a ?dry_run=true create still counts
    # against the create's, as it always did).
    @action(detail=False, methods=["post"], throttle_classes=[UserRateThrottle])
    def plan(self, request, id):
        project_get_for(user=request.user, project_id=id, action="create_workspace")
        data = validated(WorkspaceCreateInputSerializer, request)
        hardware = services.workspace_plan(user=request.user, hardware=data.get("hardware"))
        return Response({"hardware": hardware.as_dict(), "keep_active": data["keep_active"]})


@extend_schema_view(
    list=extend_schema(
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
    ),
    retrieve=extend_schema(
        operation_id="workspaces_retrieve",
        summary="Get a workspace",
        description=(
            "A workspace in a project you can see. Poll it after a create, start or stop: `status` moves "
            "through `creating`/`starting` to `running`, or `stopping` to `stopped`; on a failure it is "
            "`error` (or `stop_failed`) with `error_message`. `machine_id`, `private_ip` and `git_ref` "
            "are null until the machine runs. The `ETag` header tags this representation: send it back "
            "in `If-Match` to change or delete the workspace only if nobody changed it since."
        ),
        tags=["Workspaces"],
        parameters=[WORKSPACE_ID, ETAG_HEADER],
        responses={200: WorkspaceSerializer, **error_responses(401, 404)},
        examples=[OpenApiExample("Running", value=EXAMPLE_RUNNING, response_only=True)],
    ),
    partial_update=extend_schema(
        operation_id="workspaces_partial_update",
        summary="Change a workspace",
        description=(
            "Only `keep_active` can be changed. Counts as activity for idle auto-stop. With `If-Match`, "
            "the change is made only if the workspace still has that `ETag` (else 412, nothing changed)."
        ),
        tags=["Workspaces"],
        parameters=[WORKSPACE_ID, IF_MATCH_PARAMETER, ETAG_HEADER],
        request=WorkspaceUpdateInputSerializer,
        responses={200: WorkspaceSerializer, **error_responses(400, 401, 403, 404, 412, 415)},
    ),
    destroy=extend_schema(
        operation_id="workspaces_destroy",
        summary="Delete a workspace",
        description=(
            "The workspace is gone from the API at once; its machine and volume are destroyed in the "
            "background. With `If-Match`, only if the workspace still has that `ETag` (else 412, "
            "nothing deleted)."
        ),
        tags=["Workspaces"],
        parameters=[WORKSPACE_ID, IF_MATCH_PARAMETER],
        responses={204: None, **error_responses(401, 403, 404, 412)},
    ),
    start=_lifecycle_schema(
        "workspaces_start",
        "Start a workspace",
        "Starts a `stopped` workspace, or retries one in `error`. It moves to `starting`, then `running`.",
        "starting",
    ),
    stop=_lifecycle_schema(
        "workspaces_stop",
        "Stop a workspace",
        "Stops a `running` workspace (or retries a `stop_failed` one); its volume survives.",
        "stopping",
    ),
    events=extend_schema(
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
    ),
)
class WorkspaceViewSet(RetrieveResource, UpdateResource, DestroyResource, ResourceViewSet):
    """``/workspaces`` and ``/workspaces/{id}``: the caller's workspaces and their lifecycle. Lookup,
    ETag, If-Match and the answer are config/api/viewsets.py's; this class names the selector and the
    services."""

    lookup_url_kwarg = "id"
    serializer_class = WorkspaceSerializer
    input_serializers = {"partial_update": WorkspaceUpdateInputSerializer}
    # Reading needs only to see the workspace; every other action changes it.
    READ_ACTIONS = frozenset({"retrieve", "events"})

    def get_object(self, *, for_update: bool = False) -> Workspace:
        """The workspace in the URL, if the caller may see it (404) and do this action to it (403)."""
        return selectors.workspace_get_for(
            user=self.request.user,
            workspace_id=self.kwargs["id"],
            action="view" if self.action in self.READ_ACTIONS else "manage_workspace",
            for_update=for_update,
        )

    def perform_update(self, instance: Workspace, data: dict) -> Workspace:
        return services.workspace_update(workspace=instance, actor=Actor.for_request(self.request), **data)

    def perform_destroy(self, instance: Workspace) -> None:
        services.workspace_delete(workspace=instance, actor=Actor.for_request(self.request))

    def lifecycle(self, operation) -> Response:
        """Call a lifecycle service on the workspace and answer its new status, with the workspace's
        ``ETag`` (the tag a later ``If-Match`` is compared with, not the short body's)."""
        workspace = operation(workspace=self.get_object(), actor=Actor.for_request(self.request))
        response = Response({"status": workspace.status})
        response["ETag"] = etag_for(self.represent(workspace))
        return response

    def list(self, request):
        workspaces = selectors.workspace_list(
            user=request.user,
            status=request.query_params.get("status"),
            project_id=request.query_params.get("project_id"),
        )
        return paginated_response(request, workspaces, WorkspaceSerializer, "workspaces")

    @action(detail=True, methods=["post"])
    @idempotent
    def start(self, request, id):
        return self.lifecycle(services.workspace_start)

    @action(detail=True, methods=["post"])
    @idempotent
    def stop(self, request, id):
        return self.lifecycle(services.workspace_stop)

    @action(detail=True, methods=["get"])
    def events(self, request, id):
        return paginated_response(
            request,
            selectors.workspace_events(workspace=self.get_object()),
            WorkspaceEventSerializer,
            "events",
        )
