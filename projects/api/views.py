"""The projects API: projects, their members and invitations, and the caller's own invitations.

Each resource is one viewset (config/api/viewsets.py): ``get_object`` finds it for the caller through
projects/selectors.py (404 for what they may not see, 403 for what their role may not do), the
methods validate with a serializer and call a service, and the schema is declared beside the class.
"""

from functools import cached_property

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.actors import Actor
from config.api.conditional import ETAG_HEADER, IF_MATCH_PARAMETER
from config.api.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from config.api.openapi import BAD_PAGE, error_responses, uuid_path_parameter
from config.api.pagination import PAGINATION_PARAMETERS, paginated_response
from config.api.viewsets import (
    DestroyResource,
    ResourceViewSet,
    RetrieveResource,
    UpdateResource,
    list_envelope,
)
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
    project_get_for,
    project_invitation_get,
    project_invitations,
    project_member_get,
    project_members,
    projects_visible_to,
    require_role,
    uuid_or_404,
)

PROJECT_ID = uuid_path_parameter("id", "Project ID (UUID).")
USER_ID = uuid_path_parameter("user_id", "The member's user ID (UUID).")
INVITATION_ID = uuid_path_parameter("invitation_id", "Invitation ID (UUID).")
# A body-less POST's only 400: a malformed Idempotency-Key (config/api/idempotency.py).
_KEY_MESSAGE = "Idempotency-Key must be 1 to 255 visible ASCII characters (no spaces)."
BAD_IDEMPOTENCY_KEY = {
    "error": f"Idempotency-Key: {_KEY_MESSAGE}",
    "code": "validation_error",
    "details": [{"field": "Idempotency-Key", "code": "invalid_idempotency_key", "message": _KEY_MESSAGE}],
}


def _project_location(project_id) -> str:
    return f"/projects/{project_id}"


def _member_location(project_id, user_id) -> str:
    return f"/projects/{project_id}/members/{user_id}"


def _invitation_location(project_id, invitation_id) -> str:
    return f"/projects/{project_id}/invitations/{invitation_id}"


# --- projects -------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        operation_id="projects_list",
        summary="List your projects",
        description="The projects you own or are a member of, oldest first.",
        parameters=PAGINATION_PARAMETERS,
        responses={
            200: list_envelope("ProjectList", "projects", ProjectSerializer(many=True)),
            **error_responses(400, 401, bad_request=BAD_PAGE),
        },
    ),
    create=extend_schema(
        operation_id="projects_create",
        summary="Create a project",
        description=(
            "Creates a project that you own. `name` is unique among your projects (a duplicate is 409, "
            "`project_name_taken`); each new workspace clones `repo_url` at `default_branch` (the "
            "repository's default branch when null)."
        ),
        request=ProjectCreateInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: ProjectSerializer, **error_responses(400, 401, 409, 415, 422, 429)},
    ),
    retrieve=extend_schema(
        operation_id="projects_retrieve",
        summary="Get a project",
        description="A project you own or are a member of; any other id is 404.",
        parameters=[PROJECT_ID, ETAG_HEADER],
        responses={200: ProjectSerializer, **error_responses(401, 404)},
    ),
    partial_update=extend_schema(
        operation_id="projects_partial_update",
        summary="Change a project",
        description="Any of `name`, `description`, `repo_url`, `default_branch`, with the rules of creation; "
        "the fields left out stay as they are. Only the owner may change a project.",
        parameters=[PROJECT_ID, IF_MATCH_PARAMETER, ETAG_HEADER],
        request=ProjectUpdateInputSerializer,
        responses={200: ProjectSerializer, **error_responses(400, 401, 403, 404, 409, 412, 415)},
    ),
    destroy=extend_schema(
        operation_id="projects_destroy",
        summary="Delete a project",
        description="The project and its workspaces are gone from the API at once; the workspaces' machines "
        "and volumes are destroyed in the background. Its name can be used again. Only the owner may "
        "delete a project.",
        parameters=[PROJECT_ID, IF_MATCH_PARAMETER],
        responses={204: None, **error_responses(401, 403, 404, 412)},
    ),
)
@extend_schema(tags=["Projects"])
class ProjectViewSet(RetrieveResource, UpdateResource, DestroyResource, ResourceViewSet):
    serializer_class = ProjectSerializer
    input_serializers = {"partial_update": ProjectUpdateInputSerializer}
    lookup_url_kwarg = "id"
    # What each write needs of the caller's role (projects/selectors.py ACTIONS); reading needs "view".
    role_needed = {"partial_update": "manage_project", "destroy": "manage_project"}

    def get_object(self, *, for_update=False) -> Project:
        return project_get_for(
            user=self.request.user,
            project_id=self.kwargs["id"],
            action=self.role_needed.get(self.action, "view"),
            for_update=for_update,
        )

    def list(self, request):
        projects = projects_visible_to(request.user).order_by("created_at", "id")
        return paginated_response(request, projects, ProjectSerializer, "projects")

    @idempotent
    def create(self, request):
        serializer = ProjectCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = services.project_create(owner=request.user, **serializer.validated_data)
        return self.created(self.represent(project), _project_location(project.id))

    def perform_update(self, project, data):
        return services.project_update(project=project, **data)

    def perform_destroy(self, project):
        services.project_delete(project=project, actor=Actor.for_request(self.request))


# --- members ------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        operation_id="project_members_list",
        summary="List a project's members",
        description="The owner first (role `owner`), then the members, in the order they joined. "
        "Everyone in the project may see this.",
        parameters=[PROJECT_ID, *PAGINATION_PARAMETERS],
        responses={
            200: list_envelope("ProjectMemberList", "members", MemberSerializer(many=True)),
            **error_responses(400, 401, 404, bad_request=BAD_PAGE),
        },
    ),
    create=extend_schema(
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
        parameters=[PROJECT_ID, IDEMPOTENCY_PARAMETER],
        request=MemberCreateInputSerializer,
        responses={201: InvitationSerializer, **error_responses(400, 401, 403, 404, 409, 415, 422, 429)},
    ),
    retrieve=extend_schema(
        operation_id="project_members_retrieve",
        summary="Get a member",
        description="One of the project's people, as its members list shows them: the owner (role `owner`) "
        "or a member. Everyone in the project may see this; anyone who is not in it is a 404.",
        parameters=[PROJECT_ID, USER_ID, ETAG_HEADER],
        responses={200: MemberSerializer, **error_responses(401, 404)},
    ),
    partial_update=extend_schema(
        operation_id="project_members_partial_update",
        summary="Change a member's role",
        description="Only the owner may change roles; the owner's own role cannot change (`owner_not_member`).",
        parameters=[PROJECT_ID, USER_ID, IF_MATCH_PARAMETER, ETAG_HEADER],
        request=MemberUpdateInputSerializer,
        responses={200: MemberSerializer, **error_responses(400, 401, 403, 404, 412, 415)},
    ),
    destroy=extend_schema(
        operation_id="project_members_destroy",
        summary="Remove a member, or leave the project",
        description="The user no longer sees the project. The owner may remove any member; a member or viewer "
        "may remove themselves (leave) with their own `user_id`, and no one else. The owner cannot leave or "
        "be removed: a project always has its owner (409, `owner_cannot_leave`); they may delete it instead.",
        parameters=[PROJECT_ID, USER_ID, IF_MATCH_PARAMETER],
        responses={204: None, **error_responses(401, 403, 404, 409, 412)},
    ),
)
@extend_schema(tags=["Projects"])
class ProjectMemberViewSet(RetrieveResource, UpdateResource, DestroyResource, ResourceViewSet):
    """A project's people. Inviting someone (``create``) makes an invitation, which they accept to
    become a member (``InvitationViewSet.accept``)."""

    serializer_class = MemberSerializer
    input_serializers = {"partial_update": MemberUpdateInputSerializer}
    lookup_url_kwarg = "user_id"
    role_needed = {"create": "manage_project", "partial_update": "manage_project"}

    @cached_property
    def project(self) -> Project:
        project = project_get_for(user=self.request.user, project_id=self.kwargs["id"])
        member_id = self.kwargs.get("user_id")
        # Anyone in the project may leave it: removing someone else needs the owner's role.
        if self.action == "destroy" and uuid_or_404(member_id, what="Member") != self.request.user.pk:
            require_role(project, self.request.user, "manage_project")
        elif self.action in self.role_needed:
            require_role(project, self.request.user, self.role_needed[self.action])
        return project

    def get_object(self, *, for_update=False):
        return project_member_get(project=self.project, user_id=self.kwargs["user_id"], for_update=for_update)

    def list(self, request, id):
        return paginated_response(request, project_members(self.project), MemberSerializer, "members")

    @idempotent
    def create(self, request, id):
        project = self.project
        serializer = MemberCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation = services.invitation_create(
            project=project, invited_by=request.user, **serializer.validated_data
        )
        return self.created(
            InvitationSerializer(invitation).data, _invitation_location(project.id, invitation.id)
        )

    def perform_update(self, member, data):
        return services.membership_update(project=self.project, user_id=member.user.pk, **data)

    def perform_destroy(self, member):
        services.membership_remove(project=self.project, user_id=member.user.pk)


# --- invitations ----------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        operation_id="project_invitations_list",
        summary="List a project's pending invitations",
        description="The invitations nobody has answered yet and that have not expired, oldest first. "
        "Only the owner may see them.",
        parameters=[PROJECT_ID, *PAGINATION_PARAMETERS],
        responses={
            200: list_envelope("ProjectInvitationList", "invitations", InvitationSerializer(many=True)),
            **error_responses(400, 401, 403, 404, bad_request=BAD_PAGE),
        },
    ),
    retrieve=extend_schema(
        operation_id="project_invitations_retrieve",
        summary="Get a pending invitation",
        description="Only the owner may see it. An invitation that was accepted, declined, revoked or has "
        "expired is a 404.",
        parameters=[PROJECT_ID, INVITATION_ID, ETAG_HEADER],
        responses={200: InvitationSerializer, **error_responses(401, 403, 404)},
    ),
    destroy=extend_schema(
        operation_id="project_invitations_destroy",
        summary="Revoke a pending invitation",
        description="It can no longer be accepted; the address may be invited again. Only the owner may revoke.",
        parameters=[PROJECT_ID, INVITATION_ID, IF_MATCH_PARAMETER],
        responses={204: None, **error_responses(401, 403, 404, 412)},
    ),
)
@extend_schema(tags=["Projects"])
class ProjectInvitationViewSet(RetrieveResource, DestroyResource, ResourceViewSet):
    """A project's pending invitations, for its owner (they are made by inviting a member)."""

    serializer_class = InvitationSerializer
    lookup_url_kwarg = "invitation_id"

    def get_project(self) -> Project:
        return project_get_for(user=self.request.user, project_id=self.kwargs["id"], action="manage_project")

    def get_object(self, *, for_update=False):
        return project_invitation_get(
            project=self.get_project(), invitation_id=self.kwargs["invitation_id"], for_update=for_update
        )

    def list(self, request, id):
        return paginated_response(
            request, project_invitations(self.get_project()), InvitationSerializer, "invitations"
        )

    def perform_destroy(self, invitation):
        services.invitation_revoke(invitation=invitation)


@extend_schema_view(
    list=extend_schema(
        operation_id="invitations_list",
        summary="List your invitations",
        description="The pending invitations to your email address (whatever its case), oldest first: made "
        "before you signed up too. Accept or decline each with its id.",
        parameters=PAGINATION_PARAMETERS,
        responses={
            200: list_envelope("InvitationList", "invitations", InvitationSerializer(many=True)),
            **error_responses(400, 401, bad_request=BAD_PAGE),
        },
    ),
    accept=extend_schema(
        operation_id="invitations_accept",
        summary="Accept an invitation",
        description="You join the project with the invited role, and the invitation is used up. Someone "
        "else's invitation, or one that was revoked, answered or has expired, is a 404; being in the project "
        "already is a 409 (`already_member`).",
        parameters=[INVITATION_ID, IDEMPOTENCY_PARAMETER],
        request=None,
        responses={
            201: MemberSerializer,
            **error_responses(400, 401, 404, 409, 422, 429, bad_request=BAD_IDEMPOTENCY_KEY),
        },
    ),
    decline=extend_schema(
        operation_id="invitations_decline",
        summary="Decline an invitation",
        description="The invitation is gone; the project's owner may invite you again. Someone else's "
        "invitation, or one that was revoked, answered or has expired, is a 404.",
        parameters=[INVITATION_ID, IDEMPOTENCY_PARAMETER],
        request=None,
        responses={204: None, **error_responses(400, 401, 404, 422, 429, bad_request=BAD_IDEMPOTENCY_KEY)},
    ),
)
@extend_schema(tags=["Projects"])
class InvitationViewSet(ResourceViewSet):
    """The invitations addressed to the caller, which they accept or decline."""

    serializer_class = InvitationSerializer
    lookup_url_kwarg = "invitation_id"

    def get_object(self, *, for_update=False):
        return invitation_get_for(user=self.request.user, invitation_id=self.kwargs["invitation_id"])

    def list(self, request):
        return paginated_response(request, invitations_for(request.user), InvitationSerializer, "invitations")

    @action(detail=True, methods=["post"])
    @idempotent
    def accept(self, request, invitation_id):
        invitation = self.get_object()
        membership = services.invitation_accept(invitation=invitation, user=request.user)
        return self.created(
            MemberSerializer(membership).data, _member_location(invitation.project_id, membership.user_id)
        )

    @action(detail=True, methods=["post"])
    @idempotent
    def decline(self, request, invitation_id):
        services.invitation_decline(invitation=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
