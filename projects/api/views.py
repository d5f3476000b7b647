from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from config.openapi import BAD_PAGE, NOT_A_MEMBER, error_responses, uuid_path_parameter
from config.pagination import PAGINATION_PARAMETERS, paginated_response
from projects import services
from projects.api.serializers import (
    MemberCreateInputSerializer,
    MemberSerializer,
    MemberUpdateInputSerializer,
    ProjectCreateInputSerializer,
    ProjectSerializer,
    ProjectUpdateInputSerializer,
)
from projects.models import Project
from projects.selectors import parse_uuid, project_get_for, project_members, projects_visible_to
from workspaces.services import Actor

PROJECT_ID = uuid_path_parameter("id", "Project ID (UUID).")
USER_ID = uuid_path_parameter("user_id", "The member's user ID (UUID).")


class ProjectListView(APIView):
    @extend_schema(
        operation_id="projects_list",
        summary="List your projects",
        description="The projects you own or are a member of, oldest first.",
        tags=["Projects"],
        parameters=PAGINATION_PARAMETERS,
        responses={
            200: inline_serializer("ProjectList", {"projects": ProjectSerializer(many=True)}),
            **error_responses(400, 401, bad_request=BAD_PAGE),
        },
    )
    def get(self, request):
        projects = projects_visible_to(request.user).order_by("created_at", "id")
        return paginated_response(request, projects, ProjectSerializer, "projects")

    @extend_schema(
        operation_id="projects_create",
        summary="Create a project",
        description=(
            "Creates a project that you own. `name` is unique among your projects (a duplicate is 409, "
            "`project_name_taken`); each new workspace clones `repo_url` at `default_branch` (the "
            "repository's default branch when null)."
        ),
        tags=["Projects"],
        request=ProjectCreateInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: ProjectSerializer, **error_responses(400, 401, 409, 415, 422, 429)},
    )
    @idempotent
    def post(self, request):
        serializer = ProjectCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = services.project_create(owner=request.user, **serializer.validated_data)
        return Response(
            ProjectSerializer(project).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/projects/{project.id}"},
        )


class ProjectDetailView(APIView):
    @extend_schema(
        operation_id="projects_retrieve",
        summary="Get a project",
        description="A project you own or are a member of; any other id is 404.",
        tags=["Projects"],
        parameters=[PROJECT_ID],
        responses={200: ProjectSerializer, **error_responses(401, 404)},
    )
    def get(self, request, id):
        project = project_get_for(user=request.user, project_id=id)
        return Response(ProjectSerializer(project).data)

    @extend_schema(
        operation_id="projects_partial_update",
        summary="Change a project",
        description="Any of `name`, `description`, `repo_url`, `default_branch`, with the rules of creation; "
        "the fields left out stay as they are. Only the owner may change a project.",
        tags=["Projects"],
        parameters=[PROJECT_ID],
        request=ProjectUpdateInputSerializer,
        responses={200: ProjectSerializer, **error_responses(400, 401, 403, 404, 409, 415)},
    )
    def patch(self, request, id):
        project = project_get_for(user=request.user, project_id=id, action="manage_project")
        serializer = ProjectUpdateInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        project = services.project_update(project=project, **serializer.validated_data)
        return Response(ProjectSerializer(project).data)

    @extend_schema(
        operation_id="projects_destroy",
        summary="Delete a project",
        description="The project and its workspaces are gone from the API at once; the workspaces' machines "
        "and volumes are destroyed in the background. Its name can be used again. Only the owner may "
        "delete a project.",
        tags=["Projects"],
        parameters=[PROJECT_ID],
        responses={204: None, **error_responses(401, 403, 404)},
    )
    def delete(self, request, id):
        project = project_get_for(user=request.user, project_id=id, action="manage_project")
        services.project_delete(project=project, actor=Actor.for_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- members ------------------------------------------------------------------------------------


def _member_location(project: Project, user_id) -> str:
    return f"/projects/{project.id}/members/{user_id}"


class ProjectMembersView(APIView):
    @extend_schema(
        operation_id="project_members_list",
        summary="List a project's members",
        description="The owner first (role `owner`), then the members, in the order they joined. "
        "Everyone in the project may see this.",
        tags=["Projects"],
        parameters=[PROJECT_ID, *PAGINATION_PARAMETERS],
        responses={
            200: inline_serializer("ProjectMemberList", {"members": MemberSerializer(many=True)}),
            **error_responses(400, 401, 404, bad_request=BAD_PAGE),
        },
    )
    def get(self, request, id):
        project = project_get_for(user=request.user, project_id=id)
        return paginated_response(request, project_members(project), MemberSerializer, "members")

    @extend_schema(
        operation_id="project_members_create",
        summary="Add a member",
        description="Gives an existing user (found by email address, in any case) a role in the project: "
        "`member` (the default) may create and manage workspaces, `viewer` may only look. Only the owner "
        "may add members.",
        tags=["Projects"],
        parameters=[PROJECT_ID, IDEMPOTENCY_PARAMETER],
        request=MemberCreateInputSerializer,
        responses={201: MemberSerializer, **error_responses(400, 401, 403, 404, 409, 415, 422, 429)},
    )
    @idempotent
    def post(self, request, id):
        project = project_get_for(user=request.user, project_id=id, action="manage_project")
        serializer = MemberCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_add(project=project, **serializer.validated_data)
        return Response(
            MemberSerializer(membership).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": _member_location(project, membership.user_id)},
        )


class ProjectMemberDetailView(APIView):
    @extend_schema(
        operation_id="project_members_partial_update",
        summary="Change a member's role",
        description="Only the owner may change roles; the owner's own role cannot change (`owner_not_member`).",
        tags=["Projects"],
        parameters=[PROJECT_ID, USER_ID],
        request=MemberUpdateInputSerializer,
        responses={200: MemberSerializer, **error_responses(400, 401, 403, 404, 415)},
    )
    def patch(self, request, id, user_id):
        project = project_get_for(user=request.user, project_id=id, action="manage_project")
        serializer = MemberUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_update(
            project=project, user_id=parse_uuid(user_id, what="Member"), **serializer.validated_data
        )
        return Response(MemberSerializer(membership).data)

    @extend_schema(
        operation_id="project_members_destroy",
        summary="Remove a member",
        description="The user no longer sees the project. Only the owner may remove members; the owner "
        "cannot be removed (`owner_not_member`).",
        tags=["Projects"],
        parameters=[PROJECT_ID, USER_ID],
        responses={204: None, **error_responses(400, 401, 403, 404, bad_request=NOT_A_MEMBER)},
    )
    def delete(self, request, id, user_id):
        project = project_get_for(user=request.user, project_id=id, action="manage_project")
        services.membership_remove(project=project, user_id=parse_uuid(user_id, what="Member"))
        return Response(status=status.HTTP_204_NO_CONTENT)
