"""A project's members: the owner lists, invites, changes and removes them; members and viewers look,
and may leave. (Invitations themselves: test_invitations_api.py.)"""

import uuid

import pytest

from projects.models import Invitation, Membership, Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

MEMBER_FIELDS = {"user_id", "email", "role", "created_at"}


def patch(api, path, data):
    return api.client.patch(path, data, format="json", HTTP_AUTHORIZATION=f"Bearer {api.token}")


def delete(api, path):
    return api.client.delete(path, HTTP_AUTHORIZATION=f"Bearer {api.token}")


def members_url(project, user_id=None):
    return f"/projects/{project.id}/members" + (f"/{user_id}" if user_id else "")


@pytest.fixture
def member(project):
    return MembershipFactory(project=project, role=Role.MEMBER).user


@pytest.fixture
def viewer(project):
    return MembershipFactory(project=project, role=Role.VIEWER).user


@pytest.fixture
def people(api, api_for, member, viewer):
    """The project's owner, a member, a viewer and a stranger, each as an API client."""
    return {
        "owner": api,
        "member": api_for(member),
        "viewer": api_for(viewer),
        "stranger": api_for(UserFactory()),
    }


# --- GET /projects/{id}/members -------------------------------------------------------------------


def test_the_owner_comes_first_then_the_members_in_the_order_they_joined(api, user, project, member, viewer):
    response = api.get(members_url(project))
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["members"]
    project_created = api.get(f"/projects/{project.id}").json()["created_at"]
    owner, *others = body["members"]
    assert owner == {
        "user_id": str(user.id),
        "email": user.email,
        "role": "owner",
        "created_at": project_created,
    }
    assert [(m["user_id"], m["email"], m["role"]) for m in others] == [
        (str(member.id), member.email, "member"),
        (str(viewer.id), viewer.email, "viewer"),
    ]
    assert all(set(m) == MEMBER_FIELDS for m in body["members"])
    assert others[0]["created_at"].endswith("Z")


def test_a_project_without_members_lists_its_owner(api, user, project):
    assert [m["role"] for m in api.get(members_url(project)).json()["members"]] == ["owner"]


def test_the_members_list_pages_over_the_owner_and_the_members(api, user, project):
    joined = [MembershipFactory(project=project).user for _ in range(4)]
    everyone = [str(user.id), *(str(u.id) for u in joined)]

    def ids(**params):
        return [m["user_id"] for m in api.get(members_url(project), params).json()["members"]]

    assert ids() == everyone
    assert ids(limit=1) == everyone[:1]
    assert ids(limit=2) == everyone[:2]
    assert ids(limit=2, offset=1) == everyone[1:3]
    assert ids(offset=3) == everyone[3:]
    assert ids(offset=10) == []
    first = api.get(members_url(project), {"limit": 2})
    assert 'rel="next"' in first["Link"] and "offset=2" in first["Link"]
    assert "Link" not in api.get(members_url(project), {"offset": 2})


def test_the_members_list_costs_the_same_queries_for_few_or_many(api, project, django_assert_max_num_queries):
    for _ in range(2):
        MembershipFactory(project=project)
    api.get(members_url(project))  # warm the token's last_used_at
    with django_assert_max_num_queries(10) as few:
        assert len(api.get(members_url(project)).json()["members"]) == 3
    for _ in range(30):
        MembershipFactory(project=project)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(api.get(members_url(project)).json()["members"]) == 33


# --- POST /projects/{id}/members: an invitation, accepted --------------------------------------------


def join(owner_api, someone_api, project, email, **body):
    """Invite ``email`` as the owner, then accept as ``someone``: how anyone becomes a member."""
    invited = owner_api.post(members_url(project), {"email": email, **body})
    assert invited.status_code == 201, invited.content
    return someone_api.post(f"/invitations/{invited.json()['id']}/accept")


def test_add_a_member_by_email_in_any_case_once_they_accept(api, api_for, project):
    someone = UserFactory(email="dana@example.com")
    response = join(api, api_for(someone), project, "Dana@Example.COM", role="viewer")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == MEMBER_FIELDS
    assert (body["user_id"], body["email"], body["role"]) == (str(someone.id), "dana@example.com", "viewer")
    assert response["Location"] == f"/projects/{project.id}/members/{someone.id}"
    assert api.get(members_url(project)).json()["members"][-1] == body
    assert api.get(response["Location"]).json() == body  # the Location answers GET
    # They see the project now, as a viewer.
    assert api_for(someone).get(f"/projects/{project.id}").status_code == 200
    assert api_for(someone).post(f"/projects/{project.id}/workspaces").status_code == 403


def test_each_person_reads_alone_as_the_list_shows_them_the_owner_included(
    people, user, project, member, viewer
):
    for who in ("owner", "member", "viewer"):
        listed = people[who].get(members_url(project)).json()["members"]
        assert [m["user_id"] for m in listed] == [str(user.id), str(member.id), str(viewer.id)]
        for entry in listed:
            response = people[who].get(members_url(project, entry["user_id"]))
            assert response.status_code == 200, (who, entry)
            assert response.json() == entry


def test_nobody_is_a_member_before_accepting(api, api_for, project):
    someone = UserFactory()
    assert api.post(members_url(project), {"email": someone.email}).status_code == 201
    assert not Membership.objects.exists()
    assert [m["role"] for m in api.get(members_url(project)).json()["members"]] == ["owner"]
    assert api_for(someone).get(f"/projects/{project.id}").status_code == 404


def test_the_role_defaults_to_member(api, api_for, project):
    someone = UserFactory()
    response = join(api, api_for(someone), project, someone.email)
    assert response.status_code == 201
    assert response.json()["role"] == "member"
    assert Membership.objects.get(project=project, user=someone).role == Role.MEMBER


@pytest.mark.parametrize("who", ["owner", "member"])
def test_adding_someone_already_in_the_project_is_a_409(api, user, project, member, who):
    email = {"owner": user.email, "member": member.email.upper()}[who]
    response = api.post(members_url(project), {"email": email, "role": "viewer"})
    assert response.status_code == 409
    assert response.json()["code"] == "already_member"
    assert list(Membership.objects.values_list("user_id", "role")) == [(member.id, Role.MEMBER)]
    assert not Invitation.objects.exists()


@pytest.mark.parametrize("role", ["owner", "admin", "", "Member", " member"])
def test_an_invalid_role_is_a_400_that_lists_the_choices(api, project, role):
    response = api.post(members_url(project), {"email": UserFactory().email, "role": role})
    assert response.status_code == 400
    (detail,) = response.json()["details"]
    assert (detail["field"], detail["code"]) == ("role", "invalid_choice")
    assert detail["allowed"] == {"choices": ["member", "viewer"]}
    assert not Invitation.objects.exists()


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({}, "email", "required"),
        ({"email": None}, "email", "invalid_type"),
        ({"email": 5}, "email", "invalid_type"),
        ({"email": "a@example.com", "role": None}, "role", "invalid_type"),
        ({"email": "a@example.com", "role": 1}, "role", "invalid_type"),
        ({"email": "a@example.com", "user_id": "x"}, "user_id", "unknown_field"),
        ({"email": "not an address"}, "email", "invalid_email"),
        ({"email": ""}, "email", "blank"),
    ],
)
def test_invalid_member_bodies(api, project, body, field, code):
    UserFactory(email="a@example.com")
    response = api.post(members_url(project), body)
    assert response.status_code == 400, response.content
    assert response.json()["details"][0]["field"] == field
    assert response.json()["details"][0]["code"] == code
    assert not Invitation.objects.exists()


# --- PATCH /projects/{id}/members/{user_id} -------------------------------------------------------


def test_change_a_members_role(api, api_for, project, member):
    response = patch(api, members_url(project, member.id), {"role": "viewer"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == MEMBER_FIELDS
    assert (body["user_id"], body["email"], body["role"]) == (str(member.id), member.email, "viewer")
    assert Membership.objects.get(user=member).role == Role.VIEWER
    # A viewer now: may look, may not create workspaces.
    assert api_for(member).post(f"/projects/{project.id}/workspaces").status_code == 403
    assert patch(api, members_url(project, member.id), {"role": "member"}).json()["role"] == "member"


def test_an_empty_patch_changes_nothing(api, project, member):
    response = patch(api, members_url(project, member.id), {})
    assert response.status_code == 200
    assert response.json()["role"] == "member"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"role": "owner"}, "invalid_choice"),
        ({"role": None}, "invalid_type"),
        ({"email": "x"}, "unknown_field"),
    ],
)
def test_an_invalid_role_change_is_a_400(api, project, member, body, code):
    response = patch(api, members_url(project, member.id), body)
    assert response.status_code == 400
    assert response.json()["details"][0]["code"] == code
    assert Membership.objects.get(user=member).role == Role.MEMBER


# --- DELETE /projects/{id}/members/{user_id} ------------------------------------------------------


def test_remove_a_member(api, api_for, project, member, viewer):
    response = delete(api, members_url(project, member.id))
    assert response.status_code == 204
    assert response.content == b""
    assert [m["user_id"] for m in api.get(members_url(project)).json()["members"]][1:] == [str(viewer.id)]
    # They no longer see the project, anywhere.
    assert api_for(member).get(f"/projects/{project.id}").status_code == 404
    assert api_for(member).get("/projects").json() == {"projects": []}
    assert api_for(member).get(members_url(project)).status_code == 404
    # Removed twice: there is no such member any more.
    assert delete(api, members_url(project, member.id)).status_code == 404


def test_a_removed_member_can_be_added_again(api, api_for, project, member):
    assert delete(api, members_url(project, member.id)).status_code == 204
    assert join(api, api_for(member), project, member.email).status_code == 201


# --- leaving ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_a_member_or_viewer_can_leave(api, api_for, project, role):
    leaver = MembershipFactory(project=project, role=role).user
    stays = MembershipFactory(project=project).user
    response = delete(api_for(leaver), members_url(project, leaver.id))
    assert response.status_code == 204, response.content
    assert api_for(leaver).get(f"/projects/{project.id}").status_code == 404
    assert api_for(leaver).get("/projects").json() == {"projects": []}
    assert list(Membership.objects.values_list("user_id", flat=True)) == [stays.id]
    # Gone: leaving twice finds no project.
    assert delete(api_for(leaver), members_url(project, leaver.id)).status_code == 404


def test_the_owner_cannot_leave_their_project(api, user, project):
    response = delete(api, members_url(project, user.id))
    assert response.status_code == 409
    assert response.json()["code"] == "owner_cannot_leave"
    assert api.get(members_url(project)).json()["members"][0]["user_id"] == str(user.id)


# --- the owner is not a member; unknown members ---------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "code"), [("patch", 400, "owner_not_member"), ("delete", 409, "owner_cannot_leave")]
)
def test_the_owner_cannot_be_changed_or_removed(api, user, project, method, status, code):
    path = members_url(project, user.id)
    response = patch(api, path, {"role": "viewer"}) if method == "patch" else delete(api, path)
    assert response.status_code == status
    assert response.json()["code"] == code
    assert api.get(f"/projects/{project.id}").status_code == 200
    assert api.get(members_url(project)).json()["members"][0]["role"] == "owner"


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_someone_who_is_not_a_member_is_a_404(api, project, method):
    in_another_project = MembershipFactory().user
    for user_id in ("12345", uuid.uuid4(), UserFactory().id, in_another_project.id):
        path = members_url(project, user_id)
        if method == "get":
            response = api.get(path)
        else:
            response = patch(api, path, {"role": "viewer"}) if method == "patch" else delete(api, path)
        assert response.status_code == 404, user_id
        assert response.json() == {"error": "Member not found.", "code": "not_found"}
    assert Membership.objects.get(user=in_another_project).role == Role.MEMBER


# --- who may do what ------------------------------------------------------------------------------

MEMBERS_MATRIX = {
    "list": {"owner": 200, "member": 200, "viewer": 200, "stranger": 404},
    "get": {"owner": 200, "member": 200, "viewer": 200, "stranger": 404},
    "add": {"owner": 201, "member": 403, "viewer": 403, "stranger": 404},
    "change": {"owner": 200, "member": 403, "viewer": 403, "stranger": 404},
    "remove": {"owner": 204, "member": 403, "viewer": 403, "stranger": 404},
}


@pytest.mark.parametrize("who", ["owner", "member", "viewer", "stranger"])
@pytest.mark.parametrize("operation", list(MEMBERS_MATRIX))
def test_who_may_do_what_to_members(people, project, who, operation):
    caller = people[who]
    newcomer = UserFactory()
    someone_else = MembershipFactory(project=project, role=Role.VIEWER).user  # not the caller
    before = set(Membership.objects.values_list("user_id", "role"))
    if operation == "list":
        response = caller.get(members_url(project))
    elif operation == "get":
        response = caller.get(members_url(project, someone_else.id))
    elif operation == "add":
        response = caller.post(members_url(project), {"email": newcomer.email})
    elif operation == "change":
        response = patch(caller, members_url(project, someone_else.id), {"role": "member"})
    else:
        response = delete(caller, members_url(project, someone_else.id))
    expected = MEMBERS_MATRIX[operation][who]
    assert response.status_code == expected, response.content
    if expected == 403:
        assert response.json()["code"] == "permission_denied"
    if expected == 404:
        assert response.json() == {"error": "Project not found.", "code": "not_found"}
    if operation == "get" and expected == 200:
        assert response.json() == {
            "user_id": str(someone_else.id),
            "email": someone_else.email,
            "role": "viewer",
            "created_at": response.json()["created_at"],
        }
    if expected >= 400:
        assert set(Membership.objects.values_list("user_id", "role")) == before
        assert not Invitation.objects.exists()


def test_members_of_another_project_are_strangers_here(api_for, project):
    elsewhere = MembershipFactory(project=ProjectFactory(owner=project.owner)).user
    assert api_for(elsewhere).get(members_url(project)).status_code == 404


def test_a_deleted_projects_members_are_a_404(api, project, member):
    assert delete(api, f"/projects/{project.id}").status_code == 204
    assert api.get(members_url(project)).status_code == 404
    assert api.get(members_url(project, member.id)).status_code == 404
    assert api.post(members_url(project), {"email": UserFactory().email}).status_code == 404
    assert delete(api, members_url(project, member.id)).status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/projects/{id}/members"),
        ("post", "/projects/{id}/members"),
        ("get", "/projects/{id}/members/{user_id}"),
        ("patch", "/projects/{id}/members/{user_id}"),
        ("delete", "/projects/{id}/members/{user_id}"),
    ],
)
def test_every_member_endpoint_needs_a_token(anonymous, project, member, method, path):
    response = getattr(anonymous.client, method)(path.format(id=project.id, user_id=member.id))
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_member_writes_want_json(api, project, member):
    for method, path in (("POST", members_url(project)), ("PATCH", members_url(project, member.id))):
        response = api.client.generic(
            method, path, "role=viewer", content_type="text/plain", HTTP_AUTHORIZATION=f"Bearer {api.token}"
        )
        assert response.status_code == 415, method
