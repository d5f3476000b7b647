from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from config.api.openapi import NOT_BLANK, NamedEnum
from config.api.serializers import HintedCharField, StrictCharField, StrictSerializer
from projects.models import OWNER, Invitation, Project, Role
from projects.redaction import keep_stored_credentials, redact_credentials
from projects.validators import (
    BRANCH_SCHEMA_PATTERN,
    repo_url_schema_pattern,
    validate_branch,
    validate_repo_url,
)


def _django_validator(func):
    """A Django validator in DRF's terms, keeping its code for the error's details."""

    def run(value):
        if value is None:
            return
        try:
            func(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(ErrorDetail(exc.messages[0], code=exc.code)) from None

    return run


@extend_schema_serializer(component_name="ProjectCreate")  # request bodies: "ProjectCreateRequest"
class ProjectCreateInputSerializer(StrictSerializer):
    name = HintedCharField(max_length=100, schema=NOT_BLANK, help_text="Unique among your projects.")
    description = StrictCharField(required=False, allow_blank=True, default="", max_length=10_000)
    repo_url = HintedCharField(
        required=False,
        schema={"pattern": repo_url_schema_pattern()},
        allow_null=True,
        default=None,
        max_length=2048,
        validators=[_django_validator(validate_repo_url)],
        help_text=(
            "A git repository cloned into each new workspace. A host written as an internal address"
            " (loopback, private, link-local...) is refused (`egress_refused`); a name is checked when"
            " it is cloned. A credential in it (`https://user:password@host/...`, `https://token@host/...`)"
            " is stored for the clone but never shown again: answers carry it masked"
            " (`https://user:***@host/...`)."
        ),
    )
    default_branch = HintedCharField(
        required=False,
        schema={"pattern": BRANCH_SCHEMA_PATTERN},
        allow_null=True,
        default=None,
        max_length=255,
        validators=[_django_validator(validate_branch)],
        help_text="The branch to check out; the repository's default branch when null.",
    )


@extend_schema_serializer(component_name="ProjectUpdate")  # request bodies: "ProjectUpdateRequest"
class ProjectUpdateInputSerializer(ProjectCreateInputSerializer):
    """Any of a project's fields, with the rules of creation; a field left out stays as it is."""

    # Used with ``partial=True``: no field is required and no default applies, so only what the
    # request names is changed. Same fields and validators as creation, by inheritance.

    def to_internal_value(self, data):
        # A client that read the project and sends its repo_url back unchanged sends the masked
        # form (`https://user:***@host/...`): that means "keep it", so the stored URL, with its
        # credential, is what is validated and kept. Any other value is taken as sent.
        # The view gives the project in the context, as ``instance`` (config/api/viewsets.py).
        project = self.context.get("instance")
        if project is not None and isinstance(data, dict) and isinstance(data.get("repo_url"), str):
            data = {**data, "repo_url": keep_stored_credentials(data["repo_url"], project.repo_url)}
        return super().to_internal_value(data)


class RepoUrlField(serializers.CharField):
    """A project's ``repo_url`` as answers show it: any credential in it masked."""

    def to_representation(self, value):
        return redact_credentials(super().to_representation(value))


class ProjectSerializer(serializers.ModelSerializer):
    repo_url = RepoUrlField(
        read_only=True,
        allow_null=True,
        help_text="Cloned into each new workspace. A credential in it is shown masked, to every role: "
        "`https://user:***@host/x.git`, or `https://***@host/x.git` for a token. Sending this masked value "
        "back unchanged in a `PATCH` keeps the stored credential.",
    )

    class Meta:
        model = Project
        fields = ["id", "name", "description", "repo_url", "default_branch", "created_at", "updated_at"]
        read_only_fields = fields


class RoleInputField(NamedEnum, StrictCharField):
    """A member's role. The services check it (``invalid_choice``, with the choices in ``allowed``,
    which only they can put in the error's details); here it only has to be a string."""

    enum_name = "MemberRole"
    enum_values = list(Role.values)
    enum_description = "`member` may create and manage workspaces; `viewer` may only look."

    def __init__(self, **kwargs):
        # Taken as sent: "" and " member " are not roles, and get the same answer as any other wrong one.
        super().__init__(allow_blank=True, trim_whitespace=False, **kwargs)


class ProjectRoleField(NamedEnum, serializers.ChoiceField):
    enum_name = "ProjectRole"
    enum_values = [OWNER, *Role.values]
    enum_description = (
        "`owner` may do everything; `member` may create and manage workspaces; `viewer` may only look."
    )

    def __init__(self, **kwargs):
        super().__init__(choices=self.enum_values, **kwargs)


@extend_schema_serializer(component_name="MemberCreate")  # request bodies: "MemberCreateRequest"
class MemberCreateInputSerializer(StrictSerializer):
    """Whom to invite (an email address, in any case; it need not have an account yet) and with which role."""

    email = StrictCharField(
        max_length=254,
        help_text="The address to invite. Whoever has (or later signs up with) it sees the invitation.",
    )
    role = RoleInputField(
        required=False, default=Role.MEMBER, help_text="`member` (the default) or `viewer`."
    )


@extend_schema_serializer(component_name="MemberUpdate")  # request bodies: "MemberUpdateRequest"
class MemberUpdateInputSerializer(StrictSerializer):
    """A member's new role; left out, nothing changes."""

    role = RoleInputField(required=False, help_text="`member` or `viewer`.")


class MemberSerializer(serializers.Serializer):
    """A person in a project: its owner (role `owner`, since the project's creation) or a member."""

    user_id = serializers.UUIDField(source="user.id")
    email = serializers.EmailField(source="user.email")
    role = ProjectRoleField()
    created_at = serializers.DateTimeField(help_text="When they joined the project.")


class InvitationStatusField(NamedEnum, serializers.ChoiceField):
    enum_name = "InvitationStatus"
    enum_values = [Invitation.Status.PENDING.value]
    enum_description = "`pending`: waiting for an answer. Accepted, declined, revoked and expired invitations are gone from the API."

    def __init__(self, **kwargs):
        super().__init__(choices=self.enum_values, **kwargs)


class InvitationSerializer(serializers.Serializer):
    """An invitation to join a project, waiting for the invited person's answer."""

    id = serializers.UUIDField()
    project_id = serializers.UUIDField()
    project_name = serializers.CharField(source="project.name", help_text="So that the invited person knows.")
    email = serializers.EmailField(help_text="The invited address, lower-cased.")
    role = RoleInputField(help_text="The role they get by accepting: `member` or `viewer`.")
    status = InvitationStatusField()
    invited_by = serializers.EmailField(
        source="invited_by.email",
        allow_null=True,
        help_text="Who invited them (null if that account is gone).",
    )
    created_at = serializers.DateTimeField(help_text="When it was made, or last renewed by inviting again.")
    expires_at = serializers.DateTimeField(help_text="After this it can no longer be accepted.")
