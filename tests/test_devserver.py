"""`make run`'s set-up (config/devserver.py): the demo credentials it prints survive the next run."""

import stat

import pytest
from django.test import Client

from accounts.models import ApiToken
from config import devserver

pytestmark = pytest.mark.django_db


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def profile(token):
    return Client().get("/profile", headers={"Authorization": f"Bearer {token}"})


def logs_in(password) -> bool:
    client = Client()
    client.post("/admin/login/", {"username": devserver.DEMO_EMAIL, "password": password})
    return client.get("/admin/").status_code == 200


def test_a_second_run_keeps_the_demo_password_and_token(var_dir, settings):
    token, password, project = devserver._demo(settings)
    again_token, again_password, again_project = devserver._demo(settings)

    assert (again_token, again_password, again_project) == (token, password, project)
    assert profile(token).status_code == 200
    assert logs_in(password)
    assert ApiToken.objects.filter(user__email=devserver.DEMO_EMAIL, name="make run").count() == 1
    stored = var_dir / "demo-credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert password in stored.read_text() and token in stored.read_text()


def test_a_revoked_token_or_a_changed_password_is_replaced(var_dir, settings):
    token, password, _ = devserver._demo(settings)
    ApiToken.objects.filter(user__email=devserver.DEMO_EMAIL).update(revoked_at="2026-01-01T00:00:00Z")
    user = ApiToken.objects.get().user
    user.set_password("changed in the admin")
    user.save()

    new_token, new_password, _ = devserver._demo(settings)

    assert new_token != token and new_password != password
    assert profile(new_token).status_code == 200
    assert logs_in(new_password)
    assert new_token in (var_dir / "demo-credentials.json").read_text()
