"""ETag and If-Match on a project, a member and an invitation: a client that sends back the tag it read
changes the resource only if nobody changed it in between (412 otherwise, and nothing changes)."""

import threading
import time

import pytest
from django.db import connection, transaction

from projects.models import Invitation, Membership, Project, Role
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def send(api, method, path, data=None, if_match=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api.token}"}
    if if_match is not None:
        headers["HTTP_IF_MATCH"] = if_match
    return getattr(api.client, method)(path, data, format="json", **headers)


@pytest.fixture
def member(project):
    return MembershipFactory(project=project, role=Role.MEMBER).user


@pytest.fixture
def invitation(api, project):
    response = api.post(f"/projects/{project.id}/members", {"email": "kim@example.com", "role": "member"})
    assert response.status_code == 201, response.content
    return response.json()


# Each resource: its path, a change its owner can make with PATCH (an invitation has none), how to
# change it behind the client's back (an invitation: inviting the same address again renews it), and
# whether it still exists.
RESOURCES = ["project", "member", "invitation"]
WRITES = [
    ("project", "patch"),
    ("project", "delete"),
    ("member", "patch"),
    ("member", "delete"),
    ("invitation", "delete"),
]


@pytest.fixture
def resource(request, api, project, member, invitation):
    kind = request.param
    if kind == "project":
        return {
            "path": f"/projects/{project.id}",
            "patch": {"description": "mine"},
            "change": lambda: send(api, "patch", f"/projects/{project.id}", {"description": "theirs"}),
            "exists": lambda: Project.objects.filter(pk=project.pk, deleted_at__isnull=True).exists(),
        }
    if kind == "member":
        path = f"/projects/{project.id}/members/{member.id}"
        return {
            "path": path,
            "patch": {"role": "viewer"},
            "change": lambda: send(api, "patch", path, {"role": "viewer"}),
            "exists": lambda: Membership.objects.filter(project=project, user=member).exists(),
        }
    return {
        "path": f"/projects/{project.id}/invitations/{invitation['id']}",
        "patch": None,
        "change": lambda: api.post(
            f"/projects/{project.id}/members", {"email": "kim@example.com", "role": "viewer"}
        ),
        "exists": lambda: Invitation.objects.filter(
            pk=invitation["id"], status=Invitation.Status.PENDING
        ).exists(),
    }


def read(api, path):
    response = api.get(path)
    assert response.status_code == 200, response.content
    return response.json(), response["ETag"]


@pytest.mark.parametrize("resource", RESOURCES, indirect=True)
def test_a_get_carries_a_strong_etag_that_changes_when_the_resource_does(api, resource):
    body, tag = read(api, resource["path"])
    assert tag.startswith('"') and tag.endswith('"') and len(tag) > 2
    assert read(api, resource["path"]) == (body, tag)  # the same representation, the same tag
    assert resource["change"]().status_code in (200, 201)
    changed, new_tag = read(api, resource["path"])
    assert changed != body and new_tag != tag


@pytest.mark.parametrize("resource", ["project", "member"], indirect=True)
def test_a_patch_answers_with_the_etag_a_get_then_gives(api, resource):
    response = send(api, "patch", resource["path"], resource["patch"])
    assert response.status_code == 200, response.content
    assert (response.json(), response["ETag"]) == read(api, resource["path"])


@pytest.mark.parametrize(("resource", "method"), WRITES, indirect=["resource"])
def test_a_stale_if_match_is_412_and_changes_nothing(api, resource, method):
    _, stale = read(api, resource["path"])
    resource["change"]()  # someone else, in between
    current_body, current = read(api, resource["path"])
    for if_match in (stale, '"bogus"', "bogus", f'W/{stale}, "other"'):
        response = send(api, method, resource["path"], resource["patch"], if_match=if_match)
        assert response.status_code == 412, (if_match, response.content)
        body = response.json()
        assert body["code"] == "precondition_failed"
        assert body["details"][0]["allowed"] == {"etag": current}  # what to read again, or retry with
        assert "ETag" not in response
        assert read(api, resource["path"]) == (current_body, current)
        assert resource["exists"]()


@pytest.mark.parametrize("if_match", ["current", "weak", "in a list", "*", None])
@pytest.mark.parametrize(("resource", "method"), WRITES, indirect=["resource"])
def test_the_current_tag_star_or_no_if_match_let_the_write_through(api, resource, method, if_match):
    _, tag = read(api, resource["path"])
    header = {"current": tag, "weak": f"W/{tag}", "in a list": f'"older", {tag}', "*": "*", None: None}[
        if_match
    ]
    response = send(api, method, resource["path"], resource["patch"], if_match=header)
    if method == "patch":
        assert response.status_code == 200, response.content
        assert read(api, resource["path"]) == (response.json(), response["ETag"])
    else:
        assert response.status_code == 204, response.content
        assert not resource["exists"]()


def test_a_lost_update_is_refused(api, api_for, project):
    """Two owners' clients (here, two tokens of the owner) read the project; the first to write wins,
    the second is told, instead of silently overwriting the first one's change."""
    other_client = api_for(project.owner)
    _, tag = read(api, f"/projects/{project.id}")
    first = send(other_client, "patch", f"/projects/{project.id}", {"name": "first"}, if_match=tag)
    assert first.status_code == 200
    second = send(api, "patch", f"/projects/{project.id}", {"name": "second"}, if_match=tag)
    assert second.status_code == 412
    assert read(api, f"/projects/{project.id}")[0]["name"] == "first"
    assert second.json()["details"][0]["allowed"]["etag"] == first["ETag"]


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_who_may_not_see_a_resource_learns_nothing_from_its_tag(api_for, project, member, method):
    """A stranger gets the same 404 whatever If-Match says, never a 412 with the current tag; a viewer
    gets 403 for a write whatever If-Match says."""
    stranger, viewer = (
        api_for(UserFactory()),
        api_for(MembershipFactory(project=project, role=Role.VIEWER).user),
    )
    for path in (f"/projects/{project.id}", f"/projects/{project.id}/members/{member.id}"):
        response = send(stranger, method, path, {"role": "viewer"}, if_match='"bogus"')
        assert response.status_code == 404, path
        assert "ETag" not in response
        if method != "get":
            response = send(viewer, method, path, {"role": "viewer"}, if_match='"bogus"')
            assert response.status_code == 403, path
    assert Membership.objects.get(user=member).role == Role.MEMBER


def test_the_check_and_the_write_are_one_step(transactional_db, api, project):
    """While another transaction is changing the project, a PATCH with the tag read before waits for
    it, then sees the change and answers 412: it cannot check the old version and write over the new."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite writes one transaction at a time)")
    path = f"/projects/{project.id}"
    _, tag = read(api, path)
    answers = []

    def patch_with_the_old_tag():
        try:
            answers.append(send(api, "patch", path, {"name": "mine"}, if_match=tag))
        finally:
            connection.close()  # this thread's own connection

    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)  # someone else's write, under way
        patching = threading.Thread(target=patch_with_the_old_tag)
        patching.start()
        with connection.cursor() as cursor:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # until the PATCH waits for our lock
                cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                if cursor.fetchone()[0]:
                    break
                time.sleep(0.02)
            else:
                pytest.fail("the PATCH never waited for the row lock")
        Project.objects.filter(pk=project.pk).update(name="theirs")
    patching.join(timeout=30)
    assert answers[0].status_code == 412, answers[0].content
    assert read(api, path)[0]["name"] == "theirs"
