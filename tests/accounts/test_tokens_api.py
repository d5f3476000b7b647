"""GET/POST /auth/tokens and DELETE /auth/tokens/{id}: the secret shown once, revocation at once."""

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiToken
from accounts.services import api_token_create, api_token_revoke
from tests.conftest import Api
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

TOKEN_FIELDS = {"id", "name", "prefix", "created_at", "last_used_at", "expires_at"}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
NOT_FOUND = {"error": "Token not found.", "code": "not_found"}


@pytest.fixture
def new(user):
    """A token of ``user``'s, with its secret, and the API as that token."""
    made = api_token_create(user=user, name="laptop")
    return made, Api(made.secret)


def delete(api: Api, path: str):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api.token}"} if api.token else {}
    return api.client.delete(path, **headers)


def listed(api: Api, query: str = "") -> list[dict]:
    response = api.get(f"/auth/tokens{query}")
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"tokens"}
    return response.json()["tokens"]


def details(response) -> set[tuple]:
    assert response.status_code == 400, response.content
    return {(d["field"], d["code"]) for d in response.json()["details"]}


# --- GET /auth/tokens ------------------------------------------------------------------------------


def test_the_list_shows_each_token_without_its_secret(new, user):
    made, api = new
    api.get("/profile")  # so that last_used_at is set
    response = api.get("/auth/tokens")
    assert made.secret not in response.content.decode()
    (token,) = [t for t in listed(api) if t["id"] == str(made.token.id)]
    assert set(token) == TOKEN_FIELDS
    assert token["name"] == "laptop"
    assert token["prefix"] == made.token.prefix and made.secret.startswith(token["prefix"])
    assert ISO_UTC.match(token["created_at"]) and ISO_UTC.match(token["last_used_at"])
    assert token["expires_at"] is None


def test_the_list_is_the_callers_unrevoked_tokens_newest_first(user):
    other = UserFactory()
    api_token_create(user=other, name="theirs")
    now = timezone.now()
    made = {}
    for name, age in [("old", 3), ("new", 1), ("middle", 2)]:
        made[name] = api_token_create(user=user, name=name)
        ApiToken.objects.filter(pk=made[name].token.pk).update(created_at=now - timedelta(days=age))
    revoked = api_token_create(user=user, name="revoked")
    api_token_revoke(token=revoked.token)
    expired = api_token_create(user=user, name="expired", expires_at=now - timedelta(days=1))
    ApiToken.objects.filter(pk=expired.token.pk).update(created_at=now - timedelta(days=4))

    names = [t["name"] for t in listed(Api(made["new"].secret))]
    assert names == ["new", "middle", "old", "expired"]  # expired ones are listed, to be seen and removed


def test_equal_creation_times_are_ordered_by_id(user):
    made = [api_token_create(user=user) for _ in range(5)]
    ApiToken.objects.filter(user=user).update(created_at=timezone.now())
    ids = [t["id"] for t in listed(Api(made[0].secret))]
    assert ids == sorted((str(m.token.id) for m in made), key=uuid.UUID, reverse=True)


def test_the_list_pages_with_limit_and_offset(user):
    made = [api_token_create(user=user, name=f"t{i}") for i in range(5)]
    api = Api(made[0].secret)
    everything = listed(api)
    response = api.get("/auth/tokens?limit=2&offset=1")
    assert response.json()["tokens"] == everything[1:3]
    assert 'rel="next"' in response["Link"] and "offset=3" in response["Link"]
    assert details(api.get("/auth/tokens?limit=0")) == {("limit", "invalid_limit")}


def test_the_list_makes_a_bounded_number_of_queries(user, django_assert_max_num_queries):
    made = [api_token_create(user=user, name=f"t{i}") for i in range(60)]
    api = Api(made[0].secret)
    api.get("/profile")  # last_used_at is now fresh: the list request writes nothing
    with django_assert_max_num_queries(2):  # the token (with its user), the page
        assert len(listed(api)) == 60


# --- POST /auth/tokens -----------------------------------------------------------------------------


def test_create_shows_the_secret_once_and_the_token_works(api, user):
    response = api.post("/auth/tokens", {"name": "ci"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == TOKEN_FIELDS | {"token"}
    secret = body["token"]
    assert secret.startswith("wsk_") and secret.startswith(body["prefix"])
    assert body["name"] == "ci" and body["expires_at"] is None and body["last_used_at"] is None
    assert ISO_UTC.match(body["created_at"])
    assert response["Location"] == f"/auth/tokens/{body['id']}"
    # The Location answers GET: the token as the list shows it, never its secret again.
    located = api.get(response["Location"])
    assert located.status_code == 200
    assert located.json() == {field: body[field] for field in TOKEN_FIELDS}

    assert Api(secret).get("/profile").json()["id"] == str(user.id)

    row = ApiToken.objects.get(pk=body["id"])
    assert row.user == user
    assert not any(secret in str(v) or secret[-40:] in str(v) for v in row.__dict__.values())
    listing = api.get("/auth/tokens")
    assert secret not in listing.content.decode()
    (shown,) = [t for t in listing.json()["tokens"] if t["id"] == body["id"]]
    # The same object, but for the secret (and last_used_at: it was used just above).
    assert {k: v for k, v in shown.items() if k != "last_used_at"} == {
        k: v for k, v in body.items() if k not in {"token", "last_used_at"}
    }


def test_create_with_nothing_makes_an_unnamed_token_that_never_expires(api):
    for response in [api.post("/auth/tokens", {}), api.post("/auth/tokens/")]:
        assert response.status_code == 201, response.content
        assert response.json()["name"] == "" and response.json()["expires_at"] is None


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("2099-01-15T10:30:00Z", "2099-01-15T10:30:00Z"),
        ("2099-01-15T12:30:00+02:00", "2099-01-15T10:30:00Z"),
        ("2099-01-15T05:30:00.123456-05:00", "2099-01-15T10:30:00Z"),
    ],
)
def test_expires_at_takes_any_offset_and_is_shown_in_utc(api, given, shown):
    response = api.post("/auth/tokens", {"name": "x", "expires_at": given})
    assert response.status_code == 201, response.content
    assert response.json()["expires_at"] == shown
    row = ApiToken.objects.get(pk=response.json()["id"])
    assert row.expires_at.replace(microsecond=0) == datetime(2099, 1, 15, 10, 30, tzinfo=UTC)


def test_a_token_stops_working_when_it_expires(api):
    secret = api.post("/auth/tokens", {"expires_at": "2099-01-01T00:00:00Z"}).json()["token"]
    assert Api(secret).get("/profile").status_code == 200
    ApiToken.objects.filter(expires_at__isnull=False).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert Api(secret).get("/profile").status_code == 401


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"expires_at": "2000-01-01T00:00:00Z"}, "expires_at", "invalid_expiry"),
        ({"expires_at": "2099-01-15T10:30:00"}, "expires_at", "invalid_datetime"),  # no zone: refused
        ({"expires_at": "2099-01-15"}, "expires_at", "invalid_datetime"),
        ({"expires_at": "tomorrow"}, "expires_at", "invalid_datetime"),
        ({"expires_at": "2099-13-01T00:00:00Z"}, "expires_at", "invalid_datetime"),
        # Valid ISO 8601, but in UTC past the year 9999 (or before the year 1): no such datetime here.
        ({"expires_at": "9999-12-31T23:59:59-01:00"}, "expires_at", "invalid_datetime"),
        ({"expires_at": "0001-01-01T00:30:00+01:00"}, "expires_at", "invalid_datetime"),
        ({"expires_at": 4102444800}, "expires_at", "invalid_type"),
        ({"name": "x" * 101}, "name", "max_length"),
        ({"name": 7}, "name", "invalid_type"),
        ({"name": None}, "name", "invalid_type"),
        ({"nmae": "typo"}, "nmae", "unknown_field"),
        ([], None, "invalid_type"),
    ],
)
def test_create_refuses_a_bad_body_and_makes_nothing(api, user, body, field, code):
    before = ApiToken.objects.count()
    assert details(api.post("/auth/tokens", body)) == {(field, code)}
    assert ApiToken.objects.count() == before


def test_an_expiry_in_the_past_says_so(api):
    past = (timezone.now() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = api.post("/auth/tokens", {"expires_at": past})
    (detail,) = response.json()["details"]
    assert detail["code"] == "invalid_expiry" and "future" in detail["message"]


def test_a_form_body_is_415(api, user):
    before = ApiToken.objects.count()
    response = api.post("/auth/tokens", raw="name=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert ApiToken.objects.count() == before


# --- DELETE /auth/tokens/{id} ----------------------------------------------------------------------


def test_delete_revokes_at_once(api, new):
    made, theirs = new
    assert theirs.get("/profile").status_code == 200
    response = delete(api, f"/auth/tokens/{made.token.id}")
    assert response.status_code == 204
    assert response.content == b""
    response = theirs.get("/profile")
    assert response.status_code == 401 and response.json()["code"] == "invalid_token"
    assert str(made.token.id) not in [t["id"] for t in listed(api)]
    assert ApiToken.objects.get(pk=made.token.pk).revoked_at is not None  # kept, for the record
    assert delete(api, f"/auth/tokens/{made.token.id}").json() == NOT_FOUND  # already revoked


def test_a_token_can_revoke_itself(new):
    made, api = new
    assert delete(api, f"/auth/tokens/{made.token.id}/").status_code == 204
    assert api.get("/auth/tokens").status_code == 401


def test_another_users_token_is_not_found_and_keeps_working(api, api_for):
    other = UserFactory()
    theirs = api_token_create(user=other)
    assert api.get(f"/auth/tokens/{theirs.token.id}").json() == NOT_FOUND
    response = delete(api, f"/auth/tokens/{theirs.token.id}")
    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert Api(theirs.secret).get("/profile").status_code == 200


@pytest.mark.parametrize("token_id", [str(uuid.uuid4()), "not-a-uuid", "123", "wsk_AAAAAAAAAAAA"])
def test_unknown_and_non_uuid_ids_are_not_found(api, token_id):
    for response in (api.get(f"/auth/tokens/{token_id}"), delete(api, f"/auth/tokens/{token_id}")):
        assert response.status_code == 404
        assert response.json() == NOT_FOUND


def test_get_one_token_as_the_list_shows_it_until_it_is_revoked(api, new):
    made, _ = new
    path = f"/auth/tokens/{made.token.id}"
    response = api.get(path)
    assert response.status_code == 200
    assert response.json() == next(t for t in listed(api) if t["id"] == str(made.token.id))
    assert "token" not in response.json()
    assert delete(api, path).status_code == 204
    assert api.get(path).json() == NOT_FOUND


# --- tokens made with tokens cannot outlive them ---------------------------------------------------


def utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_with(api: Api, body=None) -> tuple[dict, Api]:
    """A token made through the API with ``api``'s token: its body, and the API as the new token."""
    response = api.post("/auth/tokens", body or {})
    assert response.status_code == 201, response.content
    return response.json(), Api(response.json()["token"])


@pytest.mark.parametrize("asked", [None, "2099-01-01T00:00:00Z", "later"])
def test_a_token_made_with_an_expiring_token_expires_with_it(user, asked):
    creator_expiry = timezone.now() + timedelta(seconds=30)
    creator = Api(api_token_create(user=user, name="short-lived", expires_at=creator_expiry).secret)
    body = (
        {}
        if asked is None
        else {"expires_at": asked if asked != "later" else utc(creator_expiry + timedelta(days=1))}
    )

    made, _ = make_with(creator, body)
    # The response says the expiry that applies: the creator's, not the one asked for.
    assert made["expires_at"] == utc(creator_expiry)
    (listed_made,) = [t for t in listed(creator) if t["id"] == made["id"]]
    assert listed_made["expires_at"] == utc(creator_expiry)


def test_an_earlier_expiry_than_the_creators_is_kept(user):
    creator = Api(api_token_create(user=user, expires_at=timezone.now() + timedelta(days=30)).secret)
    sooner = timezone.now() + timedelta(days=1)
    made, _ = make_with(creator, {"expires_at": utc(sooner)})
    assert made["expires_at"] == utc(sooner)


def test_a_token_made_with_an_expiring_token_stops_working_when_its_creator_does(user):
    creator = Api(api_token_create(user=user, expires_at=timezone.now() + timedelta(seconds=2)).secret)
    _, made = make_with(creator)
    assert made.get("/profile").status_code == 200
    deadline = time.monotonic() + 10
    while creator.get("/profile").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert creator.get("/profile").status_code == 401
    response = made.get("/profile")
    assert response.status_code == 401 and response.json()["code"] == "invalid_token"


def test_a_token_made_without_a_token_has_no_cap(api):
    """The ``api`` fixture's token was made by a command (no creator, no expiry): so is the new one."""
    made, _ = make_with(api)
    assert made["expires_at"] is None


def test_revoking_a_token_revokes_what_it_made_and_what_those_made(user):
    root = api_token_create(user=user, name="root")
    root_api = Api(root.secret)
    child, child_api = make_with(root_api, {"name": "child"})
    grandchild, grandchild_api = make_with(child_api, {"name": "grandchild"})
    _, great_api = make_with(grandchild_api, {"name": "great-grandchild"})
    # Unrelated tokens of the same user, and one made with an unrelated token, keep working.
    sibling = Api(api_token_create(user=user, name="sibling").secret)
    _, niece_api = make_with(sibling, {"name": "niece"})
    for api in (root_api, child_api, grandchild_api, great_api, sibling, niece_api):
        assert api.get("/profile").status_code == 200

    assert delete(sibling, f"/auth/tokens/{root.token.id}").status_code == 204

    for api in (root_api, child_api, grandchild_api, great_api):
        response = api.get("/profile")
        assert response.status_code == 401 and response.json()["code"] == "invalid_token"
    for api in (sibling, niece_api):
        assert api.get("/profile").status_code == 200
    assert {t["name"] for t in listed(sibling)} == {"sibling", "niece"}


def test_revoking_a_child_leaves_its_creator_working(user):
    root_api = Api(api_token_create(user=user, name="root").secret)
    child, child_api = make_with(root_api, {"name": "child"})
    _, grandchild_api = make_with(child_api, {"name": "grandchild"})

    assert delete(root_api, f"/auth/tokens/{child['id']}").status_code == 204

    assert root_api.get("/profile").status_code == 200
    assert child_api.get("/profile").status_code == 401
    assert grandchild_api.get("/profile").status_code == 401


def test_a_token_revoking_itself_takes_what_it_made_along(user):
    root = api_token_create(user=user)
    child, child_api = make_with(Api(root.secret))
    assert delete(Api(root.secret), f"/auth/tokens/{root.token.id}").status_code == 204
    assert child_api.get("/profile").status_code == 401


def test_revoking_in_the_admin_takes_what_the_token_made_along(client, user):
    from accounts.services import user_create

    staff = user_create(
        email="ops@example.com", password="s3cret-pass-word", is_staff=True, is_superuser=True
    )
    client.force_login(staff)
    root = api_token_create(user=user)
    _, child_api = make_with(Api(root.secret))
    _, grandchild_api = make_with(child_api)

    client.post("/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [str(root.token.pk)]})

    assert child_api.get("/profile").status_code == 401
    assert grandchild_api.get("/profile").status_code == 401


# --- auth ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/auth/tokens"), ("POST", "/auth/tokens"), ("DELETE", f"/auth/tokens/{uuid.uuid4()}")],
)
def test_every_endpoint_needs_a_token(anonymous, method, path):
    response = anonymous.client.generic(method, path, json.dumps({}), content_type="application/json")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")
