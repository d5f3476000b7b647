"""GET/PATCH/PUT /user/settings and GET /profile: shapes, the hardware rules of creation, strictness."""

import json
import re

import pytest
from django.test import override_settings

from accounts.models import User, UserSettings
from tests.conftest import Api
from tests.factories import UserFactory, make_token

pytestmark = pytest.mark.django_db

DEFAULTS = {"cpu_kind": "shared", "cpus": 2, "memory_mb": 2048, "volume_size_gb": 10, "gpu_kind": None}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
GPU_CATALOGUE = {
    "cpu_kinds": {
        "shared": {"cpus": [1, 2], "memory_per_cpu_mb": [256, 2048], "memory_step_mb": 256},
        "performance": {"cpus": [1, 2], "memory_per_cpu_mb": [2048, 8192], "memory_step_mb": 1024},
    },
    "volume_size_gb": [1, 500],
    "gpu_kinds": ["a100-40gb"],
}


def send(api: Api, method: str, path: str, data=None, *, raw=None, content_type="application/json"):
    """PATCH and PUT, which tests.conftest.Api does not speak, with the same Bearer token."""
    body = raw if raw is not None else ("" if data is None else json.dumps(data))
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api.token}"} if api.token else {}
    return api.client.generic(method, path, body, content_type=content_type, **headers)


def patch(api, data, path="/user/settings"):
    return send(api, "PATCH", path, data)


def put(api, data, path="/user/settings"):
    return send(api, "PUT", path, data)


def stored(user) -> dict:
    row = UserSettings.objects.get(user=user)
    return {field: getattr(row, field) for field in DEFAULTS}


def details(response) -> set[tuple]:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "validation_error"
    return {(d["field"], d["code"]) for d in body["details"]}


# --- GET -------------------------------------------------------------------------------------------


def test_get_shows_every_field_of_the_default_hardware(api):
    response = api.get("/user/settings")
    assert response.status_code == 200
    assert response.json() == {"default_hardware": DEFAULTS}


def test_a_user_without_a_settings_row_gets_the_documented_defaults(db):
    user = User.objects.create_user(email="admin-made@example.com")  # as createsuperuser makes them
    assert not UserSettings.objects.filter(user=user).exists()
    response = Api(make_token(user)).get("/user/settings/")  # trailing slash too
    assert response.status_code == 200
    assert response.json() == {"default_hardware": DEFAULTS}


# --- PATCH -----------------------------------------------------------------------------------------


def test_patch_merges_over_the_current_defaults_and_stores_them(api, user):
    response = patch(api, {"default_hardware": {"cpus": 4, "memory_mb": 4096}})
    assert response.status_code == 200, response.content
    expected = {**DEFAULTS, "cpus": 4, "memory_mb": 4096}
    assert response.json() == {"default_hardware": expected}
    assert stored(user) == expected
    response = patch(api, {"default_hardware": {"volume_size_gb": 50}})
    assert response.json() == {"default_hardware": {**expected, "volume_size_gb": 50}}
    assert api.get("/user/settings").json() == response.json()


def test_patch_with_nothing_to_change_changes_nothing(api, user):
    for body in [{}, {"default_hardware": {}}]:
        response = patch(api, body)
        assert response.status_code == 200, response.content
        assert response.json() == {"default_hardware": DEFAULTS}
    assert stored(user) == DEFAULTS


def test_new_workspaces_use_the_patched_defaults(api):
    assert (
        patch(api, {"default_hardware": {"cpus": 4, "memory_mb": 6144, "volume_size_gb": 42}}).status_code
        == 200
    )
    project = api.post("/projects", {"name": "round-trip"}).json()
    response = api.post(f"/projects/{project['id']}/workspaces", {})
    assert response.status_code == 201, response.content
    assert response.json()["hardware"] == {**DEFAULTS, "cpus": 4, "memory_mb": 6144, "volume_size_gb": 42}


def test_the_merged_result_is_checked_as_a_whole(api, user):
    # "performance" alone is fine, but not with the current 2048 MB for 2 CPUs.
    response = patch(api, {"default_hardware": {"cpu_kind": "performance"}})
    assert details(response) == {("default_hardware.memory_mb", "memory_too_low")}
    assert response.json()["details"][0]["allowed"] == {"min": 4096, "max": 16384, "step": 1024}
    assert stored(user) == DEFAULTS


@pytest.mark.parametrize(
    ("hardware", "field", "code"),
    [
        ({"memory_mb": 8192}, "memory_mb", "memory_too_high"),
        ({"memory_mb": 256}, "memory_mb", "memory_too_low"),
        ({"memory_mb": 1000}, "memory_mb", "invalid_memory_step"),
        ({"cpus": 3}, "cpus", "invalid_cpus"),
        ({"cpu_kind": "turbo"}, "cpu_kind", "invalid_cpu_kind"),
        ({"volume_size_gb": 0}, "volume_size_gb", "invalid_volume_size"),
        ({"volume_size_gb": 501}, "volume_size_gb", "invalid_volume_size"),
        ({"gpu_kind": "a100-40gb"}, "gpu_kind", "gpu_unavailable"),
        ({"cpus": "2"}, "cpus", "invalid_type"),
        ({"cpus": True}, "cpus", "invalid_type"),
        ({"memory_mb": 2.5}, "memory_mb", "invalid_type"),
        ({"cpu_kind": None}, "cpu_kind", "invalid_type"),
        ({"gpu_kind": False}, "gpu_kind", "invalid_type"),
        ({"memory": 4096}, "memory", "unknown_field"),
    ],
)
def test_each_hardware_rule_applies_to_the_defaults_and_nothing_is_stored(api, user, hardware, field, code):
    response = patch(api, {"default_hardware": hardware})
    assert details(response) == {(f"default_hardware.{field}", code)}
    assert stored(user) == DEFAULTS
    assert api.get("/user/settings").json() == {"default_hardware": DEFAULTS}


def test_a_rule_breach_says_what_would_have_been_allowed(api):
    response = patch(api, {"default_hardware": {"memory_mb": 8192}})
    assert response.json()["details"] == [
        {
            "field": "default_hardware.memory_mb",
            "code": "memory_too_high",
            "message": "memory_mb must be at most 4096 for 2 shared CPUs; got 8192.",
            "allowed": {"min": 512, "max": 4096, "step": 256},
        }
    ]
    assert response.json()["error"].startswith("default_hardware.memory_mb: ")


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"default_hardware": {}, "hardwre": {}}, "hardwre", "unknown_field"),
        ({"hardware": {"cpus": 4}}, "hardware", "unknown_field"),
        ({"default_hardware": None}, "default_hardware", "invalid_type"),
        ({"default_hardware": [4]}, "default_hardware", "invalid_type"),
        ([], None, "invalid_type"),
        ("cpus", None, "invalid_type"),
    ],
)
def test_the_body_is_strict(api, user, body, field, code):
    assert details(patch(api, body)) == {(field, code)}
    assert stored(user) == DEFAULTS


def test_several_broken_rules_are_all_reported(api, user):
    response = patch(api, {"default_hardware": {"cpus": 3, "volume_size_gb": 0}})
    assert details(response) == {
        ("default_hardware.cpus", "invalid_cpus"),
        ("default_hardware.volume_size_gb", "invalid_volume_size"),
    }
    assert stored(user) == DEFAULTS


@override_settings(WORKSPACE_HARDWARE_CATALOGUE=GPU_CATALOGUE)
def test_the_driver_is_asked_too_and_its_problems_name_the_settings_field(api, user):
    gpu = {"cpu_kind": "performance", "cpus": 1, "memory_mb": 2048, "gpu_kind": "a100-40gb"}
    response = patch(api, {"default_hardware": {**gpu, "cpu_kind": "shared", "memory_mb": 1024}})
    assert details(response) == {("default_hardware.cpu_kind", "invalid_cpu_kind")}
    # The catalogue allows it; the local driver has no GPU.
    response = patch(api, {"default_hardware": gpu})
    assert details(response) == {("default_hardware.gpu_kind", "gpu_unavailable")}
    assert "local" in response.json()["details"][0]["message"]
    assert stored(user) == DEFAULTS


def test_workspace_creation_still_names_its_own_fields(api):
    project = api.post("/projects", {"name": "p"}).json()
    response = api.post(f"/projects/{project['id']}/workspaces", {"hardware": {"cpus": 3}})
    assert details(response) == {("hardware.cpus", "invalid_cpus")}


# --- PUT -------------------------------------------------------------------------------------------


def test_put_replaces_the_whole_object(api, user):
    hardware = {"cpu_kind": "performance", "cpus": 2, "memory_mb": 8192, "volume_size_gb": 100}
    response = put(api, {"default_hardware": hardware})
    assert response.status_code == 200, response.content
    assert response.json() == {
        "default_hardware": {**hardware, "gpu_kind": None}
    }  # gpu_kind: null when omitted
    assert stored(user) == {**hardware, "gpu_kind": None}
    assert put(api, {"default_hardware": {**hardware, "gpu_kind": None}}).status_code == 200


@pytest.mark.parametrize("missing", ["cpu_kind", "cpus", "memory_mb", "volume_size_gb"])
def test_put_needs_every_hardware_field_but_gpu_kind(api, user, missing):
    hardware = {key: value for key, value in DEFAULTS.items() if key not in {missing, "gpu_kind"}}
    hardware["volume_size_gb" if missing != "volume_size_gb" else "cpus"] = 4  # a change, were it accepted
    assert details(put(api, {"default_hardware": hardware})) == {(f"default_hardware.{missing}", "required")}
    assert stored(user) == DEFAULTS


def test_put_needs_the_settings_object(api, user):
    assert details(put(api, {})) == {("default_hardware", "required")}
    assert details(put(api, None)) == {("default_hardware", "required")}  # an empty body
    assert details(put(api, {"default_hardware": None})) == {("default_hardware", "invalid_type")}
    assert stored(user) == DEFAULTS


def test_put_applies_the_same_rules_and_strictness(api, user):
    response = put(api, {"default_hardware": {**DEFAULTS, "memory_mb": 8192, "extra": 1}})
    assert details(response) == {("default_hardware.extra", "unknown_field")}
    response = put(api, {"default_hardware": {**DEFAULTS, "memory_mb": 8192}})
    assert details(response) == {("default_hardware.memory_mb", "memory_too_high")}
    response = put(api, {"default_hardware": {**DEFAULTS, "cpus": "2"}})
    assert details(response) == {("default_hardware.cpus", "invalid_type")}
    assert stored(user) == DEFAULTS


# --- GET /profile ----------------------------------------------------------------------------------


def test_profile_is_the_tokens_user(api, user):
    user.display_name = "Ada Lovelace"
    user.save()
    response = api.get("/profile")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "email", "display_name", "created_at", "updated_at"}
    assert body["id"] == str(user.id)
    assert body["email"] == user.email
    assert body["display_name"] == "Ada Lovelace"
    assert ISO_UTC.match(body["created_at"]) and ISO_UTC.match(body["updated_at"])


def test_profile_of_another_user(api_for, user):
    other = UserFactory()
    assert api_for(other).get("/profile").json()["id"] == str(other.id)


# --- auth and content type -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/user/settings"), ("PATCH", "/user/settings"), ("PUT", "/user/settings"), ("GET", "/profile")],
)
def test_every_endpoint_needs_a_token(anonymous, method, path):
    response = send(anonymous, method, path, {"default_hardware": DEFAULTS})
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_a_form_body_is_415(api, user, method):
    response = send(
        api, method, "/user/settings", raw="cpus=4", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert stored(user) == DEFAULTS


@pytest.mark.django_db(transaction=True)
def test_concurrent_patches_do_not_lose_a_change():
    import threading

    from django.db import connection

    from tests.conftest import Api
    from tests.factories import UserFactory, make_token

    user = UserFactory()
    token = make_token(user)
    barrier = threading.Barrier(2)
    changes = [{"volume_size_gb": 77}, {"cpus": 1, "memory_mb": 1024}]

    def patch(change):
        try:
            barrier.wait()
            Api(token).client.patch(
                "/user/settings",
                {"default_hardware": change},
                format="json",
                HTTP_AUTHORIZATION=f"Bearer {token}",
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=patch, args=(change,)) for change in changes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    hardware = Api(token).get("/user/settings").json()["default_hardware"]
    assert (hardware["volume_size_gb"], hardware["cpus"], hardware["memory_mb"]) == (77, 1, 1024)
