"""ETag and If-Match on the caller's settings and tokens (and an ETag on the profile): a client that
sends back the tag it read changes them only if nothing changed in between (412 otherwise)."""

import pytest

from accounts.models import ApiToken
from accounts.services import api_token_create
from tests.conftest import Api
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SETTINGS = "/user/settings"
HARDWARE = {"cpu_kind": "shared", "cpus": 2, "memory_mb": 2048, "volume_size_gb": 10, "gpu_kind": None}


def send(api, method, path, data=None, if_match=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api.token}"}
    if if_match is not None:
        headers["HTTP_IF_MATCH"] = if_match
    return getattr(api.client, method)(path, data, format="json", **headers)


def read(api, path):
    response = api.get(path)
    assert response.status_code == 200, response.content
    return response.json(), response["ETag"]


WRITES = {
    "patch": {"default_hardware": {"cpus": 4, "memory_mb": 4096}},
    "put": {"default_hardware": {**HARDWARE, "volume_size_gb": 20}},
}


def test_settings_carry_an_etag_that_changes_with_them(api):
    body, tag = read(api, SETTINGS)
    assert tag.startswith('"') and tag.endswith('"')
    assert read(api, SETTINGS) == (body, tag)
    response = send(api, "patch", SETTINGS, WRITES["patch"])
    assert response.status_code == 200
    assert response["ETag"] != tag
    assert read(api, SETTINGS) == (response.json(), response["ETag"])


@pytest.mark.parametrize("method", ["patch", "put"])
def test_a_stale_if_match_on_settings_is_412_and_changes_nothing(api, api_for, user, method):
    _, stale = read(api, SETTINGS)
    # The same user, from another client, in between.
    assert (
        send(api_for(user), "patch", SETTINGS, {"default_hardware": {"volume_size_gb": 30}}).status_code
        == 200
    )
    current_body, current = read(api, SETTINGS)
    for if_match in (stale, '"bogus"'):
        response = send(api, method, SETTINGS, WRITES[method], if_match=if_match)
        assert response.status_code == 412, response.content
        assert response.json()["code"] == "precondition_failed"
        assert response.json()["details"][0]["allowed"] == {"etag": current}
        assert read(api, SETTINGS) == (current_body, current)
    assert current_body["default_hardware"]["volume_size_gb"] == 30


@pytest.mark.parametrize("method", ["patch", "put"])
@pytest.mark.parametrize("if_match", ["current", "weak", "*", None])
def test_the_current_tag_star_or_no_if_match_change_settings(api, method, if_match):
    _, tag = read(api, SETTINGS)
    header = {"current": tag, "weak": f"W/{tag}", "*": "*", None: None}[if_match]
    response = send(api, method, SETTINGS, WRITES[method], if_match=header)
    assert response.status_code == 200, response.content
    assert read(api, SETTINGS) == (response.json(), response["ETag"])
    assert response["ETag"] != tag


def test_invalid_settings_with_the_current_tag_are_still_a_400(api):
    _, tag = read(api, SETTINGS)
    response = send(api, "patch", SETTINGS, {"default_hardware": {"memory_mb": 1}}, if_match=tag)
    assert response.status_code == 400
    assert read(api, SETTINGS)[1] == tag


def test_the_profile_carries_an_etag(api, user):
    body, tag = read(api, "/profile")
    assert body["id"] == str(user.id)
    assert read(api, "/profile") == (body, tag)
    user.display_name = "Someone else now"
    user.save()
    assert read(api, "/profile")[1] != tag


# --- tokens ----------------------------------------------------------------------------------------


@pytest.fixture
def token(user):
    """Another token of the caller's: its row, changed by its own use."""
    return api_token_create(user=user, name="laptop")


def test_a_token_carries_an_etag_that_changes_as_it_is_used(api, token):
    path = f"/auth/tokens/{token.token.id}"
    body, tag = read(api, path)
    assert body["last_used_at"] is None
    assert Api(token.secret).get("/profile").status_code == 200  # its first use is recorded
    assert read(api, path)[1] != tag


def test_revoking_with_a_stale_if_match_is_412_and_the_token_keeps_working(api, token):
    path = f"/auth/tokens/{token.token.id}"
    _, stale = read(api, path)
    Api(token.secret).get("/profile")  # used in between: what the client read is out of date
    _, current = read(api, path)
    response = send(api, "delete", path, if_match=stale)
    assert response.status_code == 412
    assert response.json()["details"][0]["allowed"] == {"etag": current}
    assert Api(token.secret).get("/profile").status_code == 200
    assert ApiToken.objects.get(pk=token.token.pk).revoked_at is None


@pytest.mark.parametrize("if_match", ["current", "*", None])
def test_revoking_with_the_current_tag_star_or_no_if_match(api, token, if_match):
    path = f"/auth/tokens/{token.token.id}"
    _, tag = read(api, path)
    response = send(api, "delete", path, if_match={"current": tag, "*": "*", None: None}[if_match])
    assert response.status_code == 204
    assert Api(token.secret).get("/profile").status_code == 401


def test_someone_elses_token_is_a_404_whatever_if_match_says(api):
    theirs = api_token_create(user=UserFactory())
    for method in ("get", "delete"):
        response = send(api, method, f"/auth/tokens/{theirs.token.id}", if_match='"bogus"')
        assert response.status_code == 404
        assert "ETag" not in response
    assert Api(theirs.secret).get("/profile").status_code == 200
