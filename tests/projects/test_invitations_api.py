"""Invitations: nobody joins a project without consent, and inviting tells
nothing about which addresses have an account."""

import re
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from projects.models import Invitation, Membership, Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

INVITATION_FIELDS = {
    "id",
    "project_id",
    "project_name",
    "email",
    "role",
    "status",
    "invited_by",
    "created_at",
    "expires_at",
}


def delete(api, path):
    return api.client.delete(path, HTTP_AUTHORIZATION=f"Bearer {api.token}")


def invite(api, project, email, **body):
    return api.post(f"/projects/{project.id}/members", {"email": email, **body})


def invitations_url(project, invitation_id=None):
    return f"/projects/{project.id}/invitations" + (f"/{invitation_id}" if invitation_id else "")


# --- no account oracle ----------------------------------------------------------------------------


def _shape(response):
    """What an inviter can compare between two answers: everything but ids, addresses and times."""
    body = response.json()
    return (
        response.status_code,
        sorted(body),
        body["role"],
        body["status"],
        body["invited_by"],
        response["Location"].rsplit("/", 1)[0],
    )


def _statements(captured) -> list[str]:
    """Each query up to its values: what it reads or writes, not with which values."""
    return [
        re.sub(r'"s\d+_x\d+"', "<savepoint>", re.split(" (?:WHERE|VALUES|SET) ", q["sql"])[0])
        for q in captured.captured_queries
    ]


def test_inviting_answers_the_same_whether_or_not_the_address_has_an_account(api, user, project):
    UserFactory(email="has-account@example.com")
    api.get("/profile")  # the token's last_used_at is written once a minute: not during the comparison
    with CaptureQueriesContext(connection) as with_account:
        known = invite(api, project, "has-account@example.com", role="viewer")
    with CaptureQueriesContext(connection) as without_account:
        unknown = invite(api, project, "nobody@example.com", role="viewer")

    assert known.status_code == unknown.status_code == 201, (known.content, unknown.content)
    assert _shape(known) == _shape(unknown)
    assert set(known.json()) == INVITATION_FIELDS
    assert "unknown_user" not in unknown.content.decode()
    # The same statements, in the same order: only the values they carry differ.
    assert _statements(with_account) == _statements(without_account)
    body = unknown.json()
    assert (body["email"], body["role"], body["status"], body["invited_by"]) == (
        "nobody@example.com",
        "viewer",
        "pending",
        user.email,
    )
    assert body["project_id"] == str(project.id) and body["project_name"] == project.name
    assert unknown["Location"] == f"/projects/{project.id}/invitations/{body['id']}"
    assert api.get(unknown["Location"]).json() == body


def test_an_invitation_expires_after_the_configured_days(api, project, settings):
    settings.PROJECT_INVITATION_EXPIRY_DAYS = 3
    before = timezone.now()
    body = invite(api, project, "dana@example.com").json()
    expires = Invitation.objects.get(pk=body["id"]).expires_at
    assert before + timedelta(days=3) <= expires <= timezone.now() + timedelta(days=3)
    assert body["expires_at"].endswith("Z")


# --- the invited person ---------------------------------------------------------------------------


def test_someone_who_signs_up_later_sees_the_invitation_and_accepts_it(api, api_for, project):
    invited = invite(api, project, "Later@Example.com", role="viewer").json()
    newcomer = UserFactory(email="later@example.com")
    me = api_for(newcomer)

    listed = me.get("/invitations")
    assert listed.status_code == 200
    assert listed.json() == {"invitations": [invited]}

    accepted = me.post(f"/invitations/{invited['id']}/accept")
    assert accepted.status_code == 201, accepted.content
    assert (accepted.json()["user_id"], accepted.json()["role"]) == (str(newcomer.id), "viewer")
    assert Membership.objects.get(project=project, user=newcomer).role == Role.VIEWER
    assert me.get(f"/projects/{project.id}").status_code == 200
    # Consumed: gone from both lists, and cannot be used twice.
    assert me.get("/invitations").json() == {"invitations": []}
    assert api.get(invitations_url(project)).json() == {"invitations": []}
    assert me.post(f"/invitations/{invited['id']}/accept").status_code == 404
    assert Invitation.objects.get(pk=invited["id"]).status == Invitation.Status.ACCEPTED


def test_decline_an_invitation(api, api_for, project):
    someone = UserFactory()
    invited = invite(api, project, someone.email).json()
    response = api_for(someone).post(f"/invitations/{invited['id']}/decline")
    assert response.status_code == 204
    assert not Membership.objects.exists()
    assert api_for(someone).get(f"/projects/{project.id}").status_code == 404
    assert api_for(someone).get("/invitations").json() == {"invitations": []}
    assert api_for(someone).post(f"/invitations/{invited['id']}/accept").status_code == 404
    # The owner may ask again.
    again = invite(api, project, someone.email)
    assert again.status_code == 201 and again.json()["id"] != invited["id"]


def test_someone_elses_invitation_is_a_404(api, api_for, project):
    invited = invite(api, project, UserFactory().email).json()
    stranger = api_for(UserFactory())
    assert stranger.get("/invitations").json() == {"invitations": []}
    for action in ("accept", "decline"):
        response = stranger.post(f"/invitations/{invited['id']}/{action}")
        assert response.status_code == 404
        assert response.json() == {"error": "Invitation not found.", "code": "not_found"}
    # Nor may the owner answer for them.
    assert api.post(f"/invitations/{invited['id']}/accept").status_code == 404
    assert Invitation.objects.get().status == Invitation.Status.PENDING
    assert not Membership.objects.exists()


@pytest.mark.parametrize("invitation_id", ["12345", str(uuid.uuid4())])
def test_unknown_invitation_ids_are_a_404(api, project, invitation_id):
    assert api.post(f"/invitations/{invitation_id}/accept").status_code == 404
    assert api.post(f"/invitations/{invitation_id}/decline").status_code == 404
    assert api.get(invitations_url(project, invitation_id)).status_code == 404
    assert delete(api, invitations_url(project, invitation_id)).status_code == 404


def test_an_expired_invitation_cannot_be_accepted(api, api_for, project):
    someone = UserFactory()
    invited = invite(api, project, someone.email).json()
    Invitation.objects.filter(pk=invited["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api_for(someone).get("/invitations").json() == {"invitations": []}
    assert api_for(someone).post(f"/invitations/{invited['id']}/accept").status_code == 404
    assert api.get(invitations_url(project)).json() == {"invitations": []}
    assert not Membership.objects.exists()
    # Inviting again renews it.
    renewed = invite(api, project, someone.email).json()
    assert renewed["id"] == invited["id"]
    assert api_for(someone).post(f"/invitations/{invited['id']}/accept").status_code == 201


def test_a_deleted_projects_invitations_are_gone(api, api_for, project):
    someone = UserFactory()
    invited = invite(api, project, someone.email).json()
    assert delete(api, f"/projects/{project.id}").status_code == 204
    assert api_for(someone).get("/invitations").json() == {"invitations": []}
    assert api_for(someone).post(f"/invitations/{invited['id']}/accept").status_code == 404
    assert not Membership.objects.exists()


def test_accepting_when_already_in_the_project_is_a_409(api, api_for, project):
    someone = UserFactory()
    invited = invite(api, project, someone.email).json()
    MembershipFactory(project=project, user=someone, role=Role.VIEWER)  # joined meanwhile (an operator)
    response = api_for(someone).post(f"/invitations/{invited['id']}/accept")
    assert response.status_code == 409
    assert response.json()["code"] == "already_member"
    assert Membership.objects.get(user=someone).role == Role.VIEWER
    assert Invitation.objects.get().status == Invitation.Status.PENDING  # rolled back with the accept


def test_accept_is_idempotent_with_a_key(api, api_for, project):
    someone = UserFactory()
    invited = invite(api, project, someone.email).json()
    me = api_for(someone)
    first = me.post(f"/invitations/{invited['id']}/accept", headers={"HTTP_IDEMPOTENCY_KEY": "k1"})
    again = me.post(f"/invitations/{invited['id']}/accept", headers={"HTTP_IDEMPOTENCY_KEY": "k1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Membership.objects.filter(user=someone).count() == 1


# --- the owner's side -----------------------------------------------------------------------------


def test_inviting_again_renews_the_pending_invitation(api, project):
    first = invite(api, project, "dana@example.com", role="viewer").json()
    second = invite(api, project, "DANA@example.com", role="member").json()
    assert second["id"] == first["id"]
    assert second["role"] == "member"
    assert second["expires_at"] >= first["expires_at"]
    assert [i["id"] for i in api.get(invitations_url(project)).json()["invitations"]] == [first["id"]]


def test_the_owner_lists_pages_and_revokes_invitations(api, api_for, project):
    people = [UserFactory() for _ in range(3)]
    ids = [invite(api, project, someone.email).json()["id"] for someone in people]
    invite(api, ProjectFactory(owner=project.owner), "elsewhere@example.com")  # another project's

    listed = api.get(invitations_url(project))
    assert listed.status_code == 200
    assert list(listed.json()) == ["invitations"]
    assert [i["id"] for i in listed.json()["invitations"]] == ids
    assert all(set(i) == INVITATION_FIELDS for i in listed.json()["invitations"])
    assert [
        i["id"] for i in api.get(invitations_url(project), {"limit": 1, "offset": 1}).json()["invitations"]
    ] == [ids[1]]
    assert api.get(invitations_url(project), {"limit": 0}).status_code == 400

    assert delete(api, invitations_url(project, ids[0])).status_code == 204
    assert [i["id"] for i in api.get(invitations_url(project)).json()["invitations"]] == ids[1:]
    assert api.get(invitations_url(project, ids[0])).status_code == 404
    assert delete(api, invitations_url(project, ids[0])).status_code == 404
    # The revoked invitation cannot be accepted.
    assert api_for(people[0]).post(f"/invitations/{ids[0]}/accept").status_code == 404
    assert not Membership.objects.exists()


def test_an_invitation_of_another_project_is_a_404_here(api, project):
    other = ProjectFactory(owner=project.owner)
    invited = invite(api, other, "dana@example.com").json()
    assert api.get(invitations_url(project, invited["id"])).status_code == 404
    assert delete(api, invitations_url(project, invited["id"])).status_code == 404
    assert Invitation.objects.get().status == Invitation.Status.PENDING


INVITATIONS_MATRIX = {
    "list": {"owner": 200, "member": 403, "viewer": 403, "stranger": 404},
    "get": {"owner": 200, "member": 403, "viewer": 403, "stranger": 404},
    "revoke": {"owner": 204, "member": 403, "viewer": 403, "stranger": 404},
}


@pytest.mark.parametrize("who", ["owner", "member", "viewer", "stranger"])
@pytest.mark.parametrize("operation", list(INVITATIONS_MATRIX))
def test_who_may_see_and_revoke_a_projects_invitations(api, api_for, project, who, operation):
    caller = {
        "owner": api,
        "member": api_for(MembershipFactory(project=project, role=Role.MEMBER).user),
        "viewer": api_for(MembershipFactory(project=project, role=Role.VIEWER).user),
        "stranger": api_for(UserFactory()),
    }[who]
    invited = invite(api, project, "dana@example.com").json()
    if operation == "list":
        response = caller.get(invitations_url(project))
    elif operation == "get":
        response = caller.get(invitations_url(project, invited["id"]))
    else:
        response = delete(caller, invitations_url(project, invited["id"]))
    expected = INVITATIONS_MATRIX[operation][who]
    assert response.status_code == expected, response.content
    if expected == 403:
        assert response.json()["code"] == "permission_denied"
    if expected == 404:
        assert response.json() == {"error": "Project not found.", "code": "not_found"}
    if expected >= 400:
        assert Invitation.objects.get().status == Invitation.Status.PENDING


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/invitations"),
        ("post", "/invitations/{invitation_id}/accept"),
        ("post", "/invitations/{invitation_id}/decline"),
        ("get", "/projects/{id}/invitations"),
        ("get", "/projects/{id}/invitations/{invitation_id}"),
        ("delete", "/projects/{id}/invitations/{invitation_id}"),
    ],
)
def test_every_invitation_endpoint_needs_a_token(api, anonymous, project, method, path):
    invited = invite(api, project, "dana@example.com").json()
    response = getattr(anonymous.client, method)(path.format(id=project.id, invitation_id=invited["id"]))
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_operators_see_invitations_in_the_admin_and_cannot_edit_them(api, project, client):
    from accounts.services import user_create

    invited = invite(api, project, "dana@example.com").json()
    staff = user_create(
        email="ops@example.com", password="s3cret-pass-word", is_staff=True, is_superuser=True
    )
    client.force_login(staff)
    listing = client.get("/admin/projects/invitation/").content.decode()
    assert "dana@example.com" in listing
    assert client.get("/admin/projects/invitation/add/").status_code == 403
    change = f"/admin/projects/invitation/{invited['id']}/change/"
    client.post(change, {"email": "eve@example.com", "role": "member", "status": "accepted"})
    assert Invitation.objects.get().email == "dana@example.com"


def test_invitation_lists_cost_the_same_queries_for_few_or_many(
    api, api_for, project, django_assert_max_num_queries
):
    invitee = UserFactory(email="dana@example.com")
    me = api_for(invitee)
    others = [ProjectFactory() for _ in range(30)]
    invite(api, project, invitee.email)
    me.get("/invitations")  # warm the tokens' last_used_at
    api.get(invitations_url(project))
    with django_assert_max_num_queries(10) as few_mine:
        assert len(me.get("/invitations").json()["invitations"]) == 1
    mine = len(few_mine.captured_queries)  # counted now: each request resets Django's query log
    with django_assert_max_num_queries(10) as few_project:
        assert len(api.get(invitations_url(project)).json()["invitations"]) == 1
    projects = len(few_project.captured_queries)
    for other in others:
        invite(api_for(other.owner), other, invitee.email)
    for n in range(30):
        invite(api, project, f"someone{n}@example.com")
    with django_assert_max_num_queries(mine):
        assert len(me.get("/invitations").json()["invitations"]) == 31
    with django_assert_max_num_queries(projects):
        assert len(api.get(invitations_url(project)).json()["invitations"]) == 31
