"""What the hot paths cost in SQL statements (docs/benchmarks.md measures their time; no test does).

A create is on every user's path and a list grows with their workspaces: these hold the numbers the
benchmark's targets rest on, so that a change that adds a round trip is seen in review.
"""

import pytest

from tests.factories import ProjectFactory
from workspaces.models import Workspace, WorkspaceEvent

pytestmark = pytest.mark.django_db


def create(api, project):
    return api.post(f"/projects/{project.id}/workspaces", {"hardware": {"cpus": 1, "memory_mb": 256}})


def test_a_create_costs_eight_statements(api, project, django_assert_num_queries):
    create(api, project)  # the token's last_used_at is written at most once a minute: not here again
    # Token, then one transaction (here a savepoint in the test's own): the user's row locked, the
    # project's access check with its lock, the quota, the workspace, its first event. The same
    # statements on every database (public APIs only: model saves, select_for_update).
    with django_assert_num_queries(8):
        response = create(api, project)
    assert response.status_code == 201
    workspace = Workspace.objects.get(pk=response.json()["id"])
    (event,) = WorkspaceEvent.objects.filter(workspace=workspace)
    assert (event.to_status, event.actor_kind) == ("creating", "token")


def test_a_create_in_anothers_project_is_a_404_and_leaves_nothing(api, project):
    others = ProjectFactory()
    response = create(api, others)
    assert response.status_code == 404
    assert not Workspace.objects.filter(project=others).exists()


def test_listing_costs_the_same_statements_for_few_or_many_workspaces(
    api, project, user, django_assert_max_num_queries
):
    def make(n):
        Workspace.objects.bulk_create(
            Workspace(
                project=project, created_by=user, cpu_kind="shared", cpus=1, memory_mb=256, volume_size_gb=1
            )
            for _ in range(n)
        )

    make(3)
    api.get("/workspaces?limit=2")
    with django_assert_max_num_queries(10) as few:
        assert len(api.get("/workspaces?limit=2").json()["workspaces"]) == 2
    make(200)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(api.get("/workspaces?limit=100").json()["workspaces"]) == 100
