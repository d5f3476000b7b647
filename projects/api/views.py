from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.actors import Actor
from config.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from config.openapi import BAD_PAGE, error_responses, uuid_path_parameter
from config.pagination import PAGINATION_PARAMETERS, paginated_response
from projects import services
from projects.api.serializers import (
    InvitationSerializer,
    MemberCreateInputSerializer,
    MemberSerializer,
    MemberUpdateInputSerializer,
    ProjectCreateInputSerializer,
    ProjectSerializer,
    ProjectUpdateInputSerializer,
)
from projects.models import Project
from projects.selectors import (
    invitation_get_for,
    invitations_for,
    parse_uuid,
    project_get_for,
    project_invitation_get,
    project_invitations,
    project_members,
    projects_visible_to,
    require_role,
)

PROJECT_ID = uuid_path_parameter("id", "Project ID (UUID).")
USER_ID = uuid_path_parameter("user_id", "The member's user ID (UUID).")
INVITATION_ID = uuid_path_parameter("invitation_id", "Invitation ID (UUID).")
# A body-less POST's only 400: a malformed Idempotency-Key (config/idempotency.py).
_KEY_MESSAGE = "Idempotency-Key must be 1 to 255 visible ASCII characters (no spaces)."
BAD_IDEMPOTENCY_KEY = {
    "error": f"Idempotency-Key: {_KEY_MESSAGE}",
    "code": "validation_error",
    "details": [{"field": "Idempotency-Key", "code": "invalid_idempotency_key", "message": _KEY_MESSAGE}],
}


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
        serializer = ProjectUpdateInputSerializer(
            data=request.data, partial=True, context={"project": project}
        )
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
        summary="Invite someone to the project",
        description="Nobody joins a project without saying yes: this invites an email address (in any case) to "
        "take a role, `member` (the default: may create and manage workspaces) or `viewer` (may only look). "
        "Whoever has, or later signs up with, that address sees the invitation in `GET /invitations` and "
        "accepts or declines it there. The answer is the same `201` with the invitation, and a `Location` "
        "header, whether or not the address has an account: inviting tells nothing about who has one. "
        "Inviting an address that already has a pending invitation to this project renews that one (same id; "
        "new role, inviter and expiry). Someone already in the project is a 409 (`already_member`). "
        "Invitations expire after the server's `PROJECT_INVITATION_EXPIRY_DAYS` (14 days by default). "
        "Only the owner may invite.",
        tags=["Projects"],
        parameters=[PROJECT_ID, IDEMPOTENCY_PARAMETER],
        request=MemberCreateInputSerializer,
        responses={201: InvitationSerializer, **error_responses(400, 401, 403, 404, 409, 415, 422, 429)},
    )
    @idempotent
    def post(self, request, id):
        project = project_get_for(user=request.user, project_id=id, action="manage_project")
        serializer = MemberCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation = services.invitation_create(
            project=project, invited_by=request.user, **serializer.validated_data
        )
        return Response(
            InvitationSerializer(invitation).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": _invitation_location(project, invitation.id)},
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
        summary="Remove a member, or leave the project",
        description="The user no longer sees the project. The owner may remove any member; a member or viewer "
        "may remove themselves (leave) with their own `user_id`, and no one else. The owner cannot leave or "
        "be removed: a project always has its owner (409, `owner_cannot_leave`); they may delete it instead.",
        tags=["Projects"],
        parameters=[PROJECT_ID, USER_ID],
        responses={204: None, **error_responses(401, 403, 404, 409)},
    )
    def delete(self, request, id, user_id):
        project = project_get_for(user=request.user, project_id=id)
        member_id = parse_uuid(user_id, what="Member")
        if member_id != request.user.pk:
            require_role(project, request.user, "manage_project")
        services.membership_remove(project=project, user_id=member_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- invitations ----------------------------------------------------------------------------------


def _invitation_location(project: Project, invitation_id) -> str:
    return f"/projects/{project.id}/invitations/{invitation_id}"


class ProjectInvitationsView(APIView):
    @extend_schema(
        operation_id="project_invitations_list",
        summary="List a project's pending invitations",
        description="The invitations nobody has answered yet and that have not expired, oldest first. "
        "Only the owner may see them.",
        tags=["Projects"],
        parameters=[PROJECT_ID, *PAGINATION_PARAMETERS],
        responses={
            200: inline_serializer("ProjectInvitationList", {"invitations": InvitationSerializer(many=True)}),
            **error_responses(400, 401, 403, 404, bad_request=BAD_PAGE),
        },
    )
    def get(self, request, id):
        project = project_get_for(user=request.user, project_id=id, action="manage_project")
        return paginated_response(request, project_invitations(project), InvitationSerializer, "invitations")


class ProjectInvitationDetailView(APIView):
    @extend_schema(
        operation_id="project_invitations_retrieve",
        summary="Get a pending invitation",
        description="Only the owner may see it. An invitation that was accepted, declined, revoked or has "
        "expired is a 404.",
        tags=["Projects"],
        parameters=[PROJECT_ID, INVITATION_ID],
        responses={200: InvitationSerializer, **error_responses(401, 403, 404)},
    )
    def get(self, request, id, invitation_id):
        project = project_get_for(user=request.user, project_id=id, action="manage_project")
        invitation = project_invitation_get(project=project, invitation_id=invitation_id)
        return Response(InvitationSerializer(invitation).data)

    @extend_schema(
        operation_id="project_invitations_destroy",
        summary="Revoke a pending invitation",
        description="It can no longer be accepted; the address may be invited again. Only the owner may revoke.",
        tags=["Projects"],
        parameters=[PROJECT_ID, INVITATION_ID],
        responses={204: None, **error_responses(401, 403, 404)},
    )
    def delete(self, request, id, invitation_id):
        project = project_get_for(user=request.user, project_id=id, action="manage_project")
        invitation = project_invitation_get(project=project, invitation_id=invitation_id)
        services.invitation_revoke(invitation=invitation)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationListView(APIView):
    @extend_schema(
        operation_id="invitations_list",
        summary="List your invitations",
        description="The pending invitations to your email address (whatever its case), oldest first: made "
        "before you signed up too. Accept or decline each with its id.",
        tags=["Projects"],
        parameters=PAGINATION_PARAMETERS,
        responses={
            200: inline_serializer("InvitationList", {"invitations": InvitationSerializer(many=True)}),
            **error_responses(400, 401, bad_request=BAD_PAGE),
        },
    )
    def get(self, request):
        return paginated_response(request, invitations_for(request.user), InvitationSerializer, "invitations")


class InvitationAcceptView(APIView):
    @extend_schema(
        operation_id="invitations_accept",
        summary="Accept an invitation",
        description="You join the project with the invited role, and the invitation is used up. Someone "
        "else's invitation, or one that was revoked, answered or has expired, is a 404; being in the project "
        "already is a 409 (`already_member`).",
        tags=["Projects"],
        parameters=[INVITATION_ID, IDEMPOTENCY_PARAMETER],
        request=None,
        responses={
            201: MemberSerializer,
            **error_responses(400, 401, 404, 409, 422, 429, bad_request=BAD_IDEMPOTENCY_KEY),
        },
    )
    @idempotent
    def post(self, request, invitation_id):
        invitation = invitation_get_for(user=request.user, invitation_id=invitation_id)
        membership = services.invitation_accept(invitation=invitation, user=request.user)
        return Response(
            MemberSerializer(membership).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": _member_location(invitation.project, membership.user_id)},
        )


class InvitationDeclineView(APIView):
    @extend_schema(
        operation_id="invitations_decline",
        summary="Decline an invitation",
        description="The invitation is gone; the project's owner may invite you again. Someone else's "
        "invitation, or one that was revoked, answered or has expired, is a 404.",
        tags=["Projects"],
        parameters=[INVITATION_ID, IDEMPOTENCY_PARAMETER],
        request=None,
        responses={204: None, **error_responses(400, 401, 404, 422, 429, bad_request=BAD_IDEMPOTENCY_KEY)},
    )
    @idempotent
    def post(self, request, invitation_id):
        invitation = invitation_get_for(user=request.user, invitation_id=invitation_id)
        services.invitation_decline(invitation=invitation)
        return Response(status=status.HTTP_204_NO_CONTENT)
