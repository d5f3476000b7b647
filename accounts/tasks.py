"""Background work for accounts: thin adapters over services."""

from celery import shared_task

from config.api.idempotency import purge_expired_keys


@shared_task
def purge_idempotency_keys() -> int:
    """Periodic (``CELERY_BEAT_SCHEDULE``): delete Idempotency-Keys past their 24 hours. It looks at
    rows, not messages, so a skipped or doubled run does no harm."""
    return purge_expired_keys()
