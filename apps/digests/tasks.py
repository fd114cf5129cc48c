"""Celery tasks for digests: thin wrappers around :mod:`apps.digests.services`.

``digests.dispatch`` runs from beat every DIGESTS_DISPATCH_SECONDS; it is safe to run
twice or at once (deliveries are unique per subscription and period). Each mail is sent by
its own ``digests.delivery_send`` task, which claims the delivery before sending and
schedules its own retry with exponential backoff after a transient (SMTP) error.
"""

from __future__ import annotations

from celery import shared_task

from apps.digests import services


@shared_task(name="digests.dispatch", time_limit=10 * 60, soft_time_limit=9 * 60)
def digests_dispatch_task() -> dict[str, int]:
    result = services.digests_dispatch()
    return {
        "digests": len(result.digests),
        "alerts": len(result.alerts),
        "requeued": result.requeued,
        "interrupted": result.interrupted,
        "errors": len(result.errors),
    }


@shared_task(name="digests.delivery_send", time_limit=5 * 60, soft_time_limit=4 * 60)
def delivery_send_task(delivery_id: int) -> str:
    outcome, attempts = services.delivery_attempt(delivery_id=delivery_id)
    if outcome == "retry":
        delivery_send_task.apply_async(args=[delivery_id], countdown=services.retry_delay(attempts))
    return outcome
