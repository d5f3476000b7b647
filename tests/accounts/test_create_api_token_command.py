import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from tests.conftest import Api
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def run(*args):
    from io import StringIO

    out, err = StringIO(), StringIO()
    call_command("create_api_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_prints_the_token_alone_on_stdout_and_it_works():
    user = UserFactory(email="dev@example.com")
    out, err = run("dev@example.com", "--name", "ci")
    token = out.strip()
    assert out == token + "\n"
    assert token.startswith("wsk_")
    assert token not in err  # the secret goes to stdout only
    assert user.api_tokens.get().name == "ci"
    assert Api(token).post("/projects", {"name": "p"}).status_code == 201


def test_creates_the_user_when_asked():
    out, _ = run("New.Person@Example.com", "--create-user")
    user = User.objects.get(email="new.person@example.com")
    assert user.settings.cpus == 2  # settings exist, with the documented defaults
    assert Api(out.strip()).post("/projects", {"name": "p"}).status_code == 201


def test_refuses_an_unknown_user_without_create_user():
    with pytest.raises(CommandError, match="--create-user"):
        run("nobody@example.com")
    assert not User.objects.exists()


def test_expiry():
    UserFactory(email="e@example.com")
    run("e@example.com", "--expires-in-days", "7")
    assert User.objects.get(email="e@example.com").api_tokens.get().expires_at is not None


@pytest.mark.parametrize("days", ["3000000", "999999999999"])
def test_an_expiry_past_the_year_9999_is_refused_in_words(days):
    UserFactory(email="e@example.com")
    with pytest.raises(CommandError, match="too large"):
        run("e@example.com", "--expires-in-days", days)
    assert not User.objects.get(email="e@example.com").api_tokens.exists()
