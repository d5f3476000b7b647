"""Idempotency-Keys are kept for their 24 hours, then purged by a periodic task."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import IdempotencyKey
from accounts.tasks import purge_idempotency_keys
from config.api.idempotency import RETENTION, purge_expired_keys
from projects.models import Project
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def create_project(api, key, name="p"):
    return api.post("/projects", {"name": name}, headers={"HTTP_IDEMPOTENCY_KEY": key})


def age(key: str, by: timedelta) -> None:
    IdempotencyKey.objects.filter(key=key).update(created_at=timezone.now() - by)


def test_a_key_within_its_24_hours_survives_the_purge_and_still_replays(api):
    first = create_project(api, "fresh")
    age("fresh", RETENTION - timedelta(minutes=5))

    assert purge_idempotency_keys() == 0

    again = create_project(api, "fresh")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Project.objects.count() == 1


def test_an_expired_key_is_purged_with_its_stored_answer_and_can_be_used_again(api):
    create_project(api, "old", name="first")
    create_project(api, "fresh", name="second")
    age("old", RETENTION + timedelta(minutes=1))

    assert purge_idempotency_keys() == 1

    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh"]
    again = create_project(api, "old", name="third")
    assert again.status_code == 201 and not again.has_header("Idempotent-Replayed")
    assert sorted(Project.objects.values_list("name", flat=True)) == ["first", "second", "third"]


def test_the_purge_deletes_in_bounded_batches():
    user = UserFactory()
    old = timezone.now() - RETENTION - timedelta(hours=1)
    IdempotencyKey.objects.bulk_create(
        [
            IdempotencyKey(user=user, key=f"old-{i}", request_fingerprint="f", created_at=old)
            for i in range(25)
        ]
        + [IdempotencyKey(user=user, key=f"new-{i}", request_fingerprint="f") for i in range(3)]
    )

    with CaptureQueriesContext(connection) as queries:
        assert purge_expired_keys(batch_size=10) == 25

    deletes = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("DELETE")]
    assert len(deletes) == 3  # 10 + 10 + 5
    assert sorted(IdempotencyKey.objects.values_list("key", flat=True)) == ["new-0", "new-1", "new-2"]
    assert purge_expired_keys(batch_size=10) == 0


def test_the_purge_is_on_the_beat_schedule():
    entry = settings.CELERY_BEAT_SCHEDULE["purge-idempotency-keys"]
    assert entry["task"] == purge_idempotency_keys.name == "accounts.tasks.purge_idempotency_keys"
    assert entry["schedule"] == settings.IDEMPOTENCY_PURGE_INTERVAL_SECONDS
