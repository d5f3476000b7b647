"""Bearer tokens: every way a token can be wrong is a 401 in our shape, with WWW-Authenticate."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiToken
from accounts.services import api_token_create, api_token_revoke
from tests.conftest import Api
from tests.factories import UserFactory, make_token

pytestmark = pytest.mark.django_db


def assert_401(response, code):
    assert response.status_code == 401, response.content
    assert response.json()["code"] == code
    assert set(response.json()) == {"error", "code"}
    assert response["WWW-Authenticate"].startswith("Bearer")


def call(project_path, **headers):
    return Api().client.post(project_path, {}, format="json", **headers)


def test_missing_header(db):
    assert_401(call("/projects"), "not_authenticated")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer not-a-token",
        "Bearer wsk_short_x",
        "Bearer wsk_AAAAAAAAAAAA_" + "B" * 40,  # well formed, but no such token
        "Token abc",
        "Basic dXNlcjpwYXNz",
        "wsk_AAAAAAAAAAAA_" + "B" * 40,
    ],
)
def test_malformed_wrong_or_foreign_scheme_tokens(db, header):
    response = call("/projects", HTTP_AUTHORIZATION=header)
    assert_401(response, "invalid_token")
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_a_token_with_a_known_key_but_a_wrong_secret(user):
    secret = make_token(user)
    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    assert_401(call("/projects", HTTP_AUTHORIZATION=f"Bearer {forged}"), "invalid_token")


def test_an_expired_token(user):
    secret = api_token_create(user=user, expires_at=timezone.now() - timedelta(seconds=1)).secret
    response = call("/projects", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert_401(response, "invalid_token")
    assert "expired" in response.json()["error"]


def test_a_revoked_token(user):
    new = api_token_create(user=user)
    assert Api(new.secret).post("/projects", {"name": "a"}).status_code == 201
    api_token_revoke(token=new.token)
    response = call("/projects", HTTP_AUTHORIZATION=f"Bearer {new.secret}")
    assert_401(response, "invalid_token")
    assert "revoked" in response.json()["error"]


def test_a_deactivated_users_token(user):
    secret = make_token(user)
    user.is_active = False
    user.save()
    assert_401(call("/projects", HTTP_AUTHORIZATION=f"Bearer {secret}"), "invalid_token")


def test_a_good_token_works_with_any_case_of_the_scheme(user):
    secret = make_token(user)
    assert (
        Api()
        .client.post("/projects", {"name": "p"}, format="json", HTTP_AUTHORIZATION=f"bearer {secret}")
        .status_code
        == 201
    )


def test_tokens_are_prefixed_high_entropy_and_stored_only_as_a_digest(user):
    new = api_token_create(user=user, name="laptop")
    assert new.secret.startswith("wsk_") and len(new.secret) >= 50
    row = ApiToken.objects.get(pk=new.token.pk)
    stored = [str(value) for value in row.__dict__.values()]
    assert not any(new.secret in value or new.secret[-40:] in value for value in stored)
    assert new.secret.startswith(row.prefix)
    assert len(row.digest) == 64


def test_last_used_at_is_recorded_at_most_once_a_minute(user):
    new = api_token_create(user=user)
    api = Api(new.secret)
    api.post("/projects", {"name": "a"})
    first = ApiToken.objects.get(pk=new.token.pk).last_used_at
    assert first is not None
    api.post("/projects", {"name": "b"})
    assert ApiToken.objects.get(pk=new.token.pk).last_used_at == first
    ApiToken.objects.filter(pk=new.token.pk).update(last_used_at=first - timedelta(minutes=2))
    api.post("/projects", {"name": "c"})
    assert ApiToken.objects.get(pk=new.token.pk).last_used_at > first


def test_one_users_token_acts_as_that_user_only(db):
    alice, bob = UserFactory(), UserFactory()
    project = Api(make_token(alice)).post("/projects", {"name": "mine"}).json()
    assert Api(make_token(bob)).get(f"/projects/{project['id']}").status_code == 404


def test_the_schema_and_docs_need_no_token(db):
    client = Api().client
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/openapi.yaml").status_code == 200
    assert client.get("/docs").status_code == 200
