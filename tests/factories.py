import factory

from accounts.models import User
from accounts.services import api_token_create, user_create
from projects.models import Membership, Project, Role
from workspaces.models import Workspace


class UserFactory(factory.django.DjangoModelFactory):
    """Users made through the service, so that they have settings as real users do."""

    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return user_create(**kwargs)


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"project-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


class WorkspaceFactory(factory.django.DjangoModelFactory):
    """A workspace row in whatever state a test needs (``status=...``), made directly: no task is
    queued and no machine exists unless the test makes one. Small hardware on the local driver."""

    class Meta:
        model = Workspace

    project = factory.SubFactory(ProjectFactory)
    created_by = factory.SelfAttribute("project.owner")
    cpu_kind = "shared"
    cpus = 1
    memory_mb = 512
    volume_size_gb = 1
    driver = "local"


def make_token(user, **kwargs) -> str:
    """A usable API token secret for ``user``."""
    return api_token_create(user=user, **kwargs).secret
