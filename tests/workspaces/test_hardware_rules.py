"""Every hardware rule of docs/api.md, at its boundaries on both sides, through the create endpoint."""

import pytest
from django.test import override_settings

from workspaces.models import Workspace

pytestmark = pytest.mark.django_db


def create(api, project, **hardware):
    return api.post(f"/projects/{project.id}/workspaces", {"hardware": hardware})


def problem(response):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "validation_error"
    assert len(body["details"]) == 1, body
    return body["details"][0]


@pytest.mark.parametrize(
    ("cpu_kind", "cpus", "memory_mb"),
    [
        ("shared", 1, 256),
        ("shared", 1, 2048),
        ("shared", 2, 512),
        ("shared", 8, 16384),
        ("shared", 6, 1536),
        ("performance", 1, 2048),
        ("performance", 1, 8192),
        ("performance", 16, 32768),
        ("performance", 16, 131072),
        ("performance", 10, 20480),
    ],
)
def test_valid_combinations_at_the_boundaries_are_accepted(api, project, cpu_kind, cpus, memory_mb):
    response = create(api, project, cpu_kind=cpu_kind, cpus=cpus, memory_mb=memory_mb)
    assert response.status_code == 201, response.content
    assert response.json()["hardware"] == {
        "cpu_kind": cpu_kind,
        "cpus": cpus,
        "memory_mb": memory_mb,
        "volume_size_gb": 10,
        "gpu_kind": None,
    }


def test_unknown_cpu_kind(api, project):
    detail = problem(create(api, project, cpu_kind="quantum"))
    assert detail["field"] == "hardware.cpu_kind"
    assert detail["code"] == "invalid_cpu_kind"
    assert detail["allowed"] == {"choices": ["shared", "performance"]}


@pytest.mark.parametrize(
    ("cpu_kind", "cpus", "memory_mb"),
    [
        ("shared", 0, 2048),
        ("shared", 3, 2048),
        ("shared", 10, 4096),
        ("performance", 3, 8192),
        ("performance", 18, 36864),
    ],
)
def test_cpus_outside_the_kinds_choices(api, project, cpu_kind, cpus, memory_mb):
    detail = problem(create(api, project, cpu_kind=cpu_kind, cpus=cpus, memory_mb=memory_mb))
    assert detail["field"] == "hardware.cpus"
    assert detail["code"] == "invalid_cpus"
    expected = [1, 2, 4, 6, 8] if cpu_kind == "shared" else [1, 2, 4, 6, 8, 10, 12, 14, 16]
    assert detail["allowed"] == {"choices": expected}


@pytest.mark.parametrize(
    ("cpu_kind", "cpus", "memory_mb", "code", "allowed"),
    [
        ("shared", 1, 0, "memory_too_low", {"min": 256, "max": 2048, "step": 256}),
        ("shared", 1, 255, "memory_too_low", {"min": 256, "max": 2048, "step": 256}),
        ("shared", 1, 2049, "memory_too_high", {"min": 256, "max": 2048, "step": 256}),
        ("shared", 1, 2304, "memory_too_high", {"min": 256, "max": 2048, "step": 256}),
        ("shared", 2, 256, "memory_too_low", {"min": 512, "max": 4096, "step": 256}),
        ("shared", 2, 4352, "memory_too_high", {"min": 512, "max": 4096, "step": 256}),
        ("shared", 1, 300, "invalid_memory_step", {"min": 256, "max": 2048, "step": 256}),
        ("shared", 2, 1000, "invalid_memory_step", {"min": 512, "max": 4096, "step": 256}),
        ("performance", 1, 1024, "memory_too_low", {"min": 2048, "max": 8192, "step": 1024}),
        ("performance", 1, 2047, "memory_too_low", {"min": 2048, "max": 8192, "step": 1024}),
        ("performance", 1, 9216, "memory_too_high", {"min": 2048, "max": 8192, "step": 1024}),
        ("performance", 2, 3072, "memory_too_low", {"min": 4096, "max": 16384, "step": 1024}),
        ("performance", 1, 2560, "invalid_memory_step", {"min": 2048, "max": 8192, "step": 1024}),
    ],
)
def test_memory_rules(api, project, cpu_kind, cpus, memory_mb, code, allowed):
    detail = problem(create(api, project, cpu_kind=cpu_kind, cpus=cpus, memory_mb=memory_mb))
    assert detail["field"] == "hardware.memory_mb"
    assert detail["code"] == code
    assert detail["allowed"] == allowed
    assert str(memory_mb) in detail["message"]


@pytest.mark.parametrize(("size", "ok"), [(0, False), (1, True), (500, True), (501, False), (-5, False)])
def test_volume_size_between_1_and_500(api, project, size, ok):
    response = create(api, project, volume_size_gb=size)
    if ok:
        assert response.status_code == 201
        assert response.json()["hardware"]["volume_size_gb"] == size
    else:
        detail = problem(response)
        assert detail == {
            "field": "hardware.volume_size_gb",
            "code": "invalid_volume_size",
            "message": f"volume_size_gb must be between 1 and 500; got {size}.",
            "allowed": {"min": 1, "max": 500},
        }


def test_a_gpu_is_refused_when_the_deployment_lists_none(api, project):
    detail = problem(
        create(api, project, cpu_kind="performance", cpus=1, memory_mb=2048, gpu_kind="a100-40gb")
    )
    assert detail["field"] == "hardware.gpu_kind"
    assert detail["code"] == "gpu_unavailable"
    assert detail["allowed"] == {"choices": []}


def test_gpu_null_is_no_gpu(api, project):
    assert create(api, project, gpu_kind=None).status_code == 201


@override_settings(
    WORKSPACE_HARDWARE_CATALOGUE={
        "cpu_kinds": {
            "shared": {"cpus": [1, 2], "memory_per_cpu_mb": [256, 2048], "memory_step_mb": 256},
            "performance": {"cpus": [1, 2], "memory_per_cpu_mb": [2048, 8192], "memory_step_mb": 1024},
        },
        "volume_size_gb": [1, 500],
        "gpu_kinds": ["a100-40gb"],
    }
)
def test_a_listed_gpu_needs_performance_cpus_and_a_driver_that_has_gpus(api, project):
    detail = problem(create(api, project, cpu_kind="shared", cpus=1, memory_mb=1024, gpu_kind="a100-40gb"))
    assert (detail["field"], detail["code"], detail["allowed"]) == (
        "hardware.cpu_kind",
        "invalid_cpu_kind",
        {"choices": ["performance"]},
    )
    # The catalogue allows it, but the local driver has no GPU: refused before anything is made.
    detail = problem(
        create(api, project, cpu_kind="performance", cpus=1, memory_mb=2048, gpu_kind="a100-40gb")
    )
    assert (detail["field"], detail["code"]) == ("hardware.gpu_kind", "gpu_unavailable")
    assert "local" in detail["message"]
    assert not Workspace.objects.exists()


def test_several_broken_rules_are_all_reported(api, project):
    response = create(api, project, cpu_kind="shared", cpus=2, memory_mb=100, volume_size_gb=0)
    assert response.status_code == 400
    codes = {(d["field"], d["code"]) for d in response.json()["details"]}
    assert codes == {
        ("hardware.memory_mb", "memory_too_low"),
        ("hardware.volume_size_gb", "invalid_volume_size"),
    }
    assert "and 1 more problem" in response.json()["error"]


def test_cpus_of_the_other_kind_are_checked_against_the_merged_kind(api, project):
    """Changing only cpu_kind to performance keeps the default 2048 MB, too little for 2 performance CPUs."""
    detail = problem(create(api, project, cpu_kind="performance"))
    assert detail["code"] == "memory_too_low"
    assert detail["allowed"] == {"min": 4096, "max": 16384, "step": 1024}
