"""Writes for projects."""

from django.db import IntegrityError, transaction

from accounts.models import User
from config.errors import Conflict
from projects.models import Project


def project_create(
    *,
    owner: User,
    name: str,
    description: str = "",
    repo_url: str | None = None,
    default_branch: str | None = None,
) -> Project:
    try:
        with transaction.atomic():
            return Project.objects.create(
                owner=owner,
                name=name,
                description=description,
                repo_url=repo_url,
                default_branch=default_branch,
            )
    except IntegrityError:
        # The unique constraint, not a prior SELECT, decides: two concurrent creates cannot both win.
        if Project.objects.filter(owner=owner, name=name, deleted_at__isnull=True).exists():
            raise Conflict(f"You already have a project named {name!r}.", code="project_name_taken") from None
        raise
