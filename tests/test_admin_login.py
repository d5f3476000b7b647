"""The admin's login is throttled (django-axes): a few wrong passwords for one username from one
address lock that pair out for a while, even with the right password; others are unaffected."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client

from accounts.services import user_create

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "s3cret-pass-word"


@pytest.fixture
def operator(db):
    return user_create(email="ops@example.com", password=PASSWORD, is_staff=True, is_superuser=True)


@pytest.fixture
def colleague(db):
    return user_create(email="colleague@example.com", password=PASSWORD, is_staff=True)


def log_in(client, email, password, **headers):
    return client.post(LOGIN, {"username": email, "password": password}, **headers)


def logged_in(client) -> bool:
    return client.get("/admin/").status_code == 200


def fail_until_locked(client, email, **headers):
    """The documented number of wrong passwords; the last one is answered with the lockout page."""
    limit = settings.AXES_FAILURE_LIMIT
    for attempt in range(1, limit + 1):
        response = log_in(client, email, "wrong", **headers)
        if attempt < limit:
            assert (
                response.status_code == 200 and "Please enter the correct email" in response.content.decode()
            )
    return response


def test_the_defaults_are_five_failures_and_a_quarter_of_an_hour():
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME == timedelta(minutes=15)


def test_after_the_failure_limit_even_the_right_password_is_refused(client, operator):
    response = fail_until_locked(client, operator.email)
    assert response.status_code == 429 and 'id="locked-out"' in response.content.decode()

    response = log_in(client, operator.email, PASSWORD)
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed logins" in page and "0:15:00" in page
    assert not logged_in(client)


def test_another_username_from_the_same_address_is_unaffected(client, operator, colleague):
    fail_until_locked(client, operator.email)
    response = log_in(client, colleague.email, PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert logged_in(client)


def test_the_same_username_from_another_address_is_unaffected(client, operator):
    fail_until_locked(client, operator.email)
    elsewhere = Client(REMOTE_ADDR="203.0.113.7")
    assert log_in(elsewhere, operator.email, PASSWORD).status_code == 302
    assert logged_in(elsewhere)


def test_a_forwarded_for_header_does_not_escape_the_lockout(client, operator):
    """The address is the connection's (REMOTE_ADDR): X-Forwarded-For is whatever the client writes."""
    fail_until_locked(client, operator.email)
    response = log_in(client, operator.email, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.23")
    assert response.status_code == 429
    assert not logged_in(client)


def test_the_lockout_ends_after_the_cool_off(client, operator):
    fail_until_locked(client, operator.email)
    # As if the cool-off had passed since the last failure (no sleeping through a quarter of an hour).
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time - settings.AXES_COOLOFF_TIME
    )
    assert log_in(client, operator.email, PASSWORD).status_code == 302
    assert logged_in(client)


def test_a_success_clears_the_count(client, operator):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, operator.email, "wrong")
    assert log_in(client, operator.email, PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, operator.email, "wrong")
    assert log_in(client, operator.email, PASSWORD).status_code == 302


def test_the_api_is_not_throttled_by_admin_logins(client, operator):
    """The API authenticates with Bearer tokens, not passwords: an operator locked out of the admin
    keeps using their tokens."""
    from tests.conftest import Api
    from tests.factories import make_token

    fail_until_locked(client, operator.email)
    assert Api(make_token(operator)).get("/profile").status_code == 200


def test_an_operator_lifts_a_lockout_with_the_documented_command(client, operator):
    from django.core.management import call_command

    fail_until_locked(client, operator.email)
    call_command("axes_reset_username", operator.email)
    assert log_in(client, operator.email, PASSWORD).status_code == 302
