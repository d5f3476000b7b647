from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from config.serializers import StrictCharField, StrictSerializer
from projects.models import Project
from projects.validators import validate_branch, validate_repo_url


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


class ProjectCreateInputSerializer(StrictSerializer):
    name = StrictCharField(max_length=100, help_text="Unique among your projects.")
    description = StrictCharField(required=False, allow_blank=True, default="", max_length=10_000)
    repo_url = StrictCharField(
        required=False,
        allow_null=True,
        default=None,
        max_length=2048,
        validators=[_django_validator(validate_repo_url)],
        help_text="A git repository cloned into each new workspace.",
    )
    default_branch = StrictCharField(
        required=False,
        allow_null=True,
        default=None,
        max_length=255,
        validators=[_django_validator(validate_branch)],
        help_text="The branch to check out; the repository's default branch when null.",
    )


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "description", "repo_url", "default_branch", "created_at", "updated_at"]
        read_only_fields = fields
