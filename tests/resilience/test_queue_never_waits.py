"""An edit committed while the nightly rebuild (or an update) is dequeuing the same month
or deal must not wait for that long transaction: at 1M deals the rebuild holds it for
minutes, the web process's statement timeout fires after 30 s, and the user of a change
already committed was told "nothing was changed". Found by the soak in bench/load_bench.py."""

from __future__ import annotations

from datetime import date

import psycopg2
import pytest
from django.db import connection

from apps.kpis.models import DirtyDeal, DirtyMonth
from apps.kpis.services import rollups_deals_changed, rollups_mark_dirty

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _other_connection():
    params = connection.get_connection_params()
    return psycopg2.connect(
        **{k: v for k, v in params.items() if k in ("dbname", "user", "host", "port")}
    )


def test_queueing_does_not_wait_for_a_rebuild_dequeuing_the_same_keys(monkeypatch):
    # given a month and a deal already queued, and a rebuild that has dequeued them in its
    # still open transaction (as rollups_rebuild does first)
    monkeypatch.setattr("apps.kpis.services.rollups_update_enqueue", lambda: False)
    rollups_mark_dirty(area="quotas", months=[date(2026, 7, 1)])
    rollups_deals_changed(opportunity_ids=[424242], stage_ids=[])
    rebuild = _other_connection()
    try:
        with rebuild.cursor() as cursor:
            cursor.execute(f"DELETE FROM {DirtyMonth._meta.db_table}")
            cursor.execute(f"DELETE FROM {DirtyDeal._meta.db_table}")
        # when an edit commits and queues the same month and deal, with a short timeout
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 2000")
        try:
            rollups_mark_dirty(area="quotas", months=[date(2026, 7, 15)])
            rollups_deals_changed(opportunity_ids=[424242], stage_ids=[])
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET statement_timeout = 0")
        # then it did not wait (a unique key would have blocked until the timeout), and
        # after the rebuild commits the new marks are still queued for the next update
        rebuild.commit()
    finally:
        rebuild.close()
    assert list(DirtyMonth.objects.values_list("area", "month")) == [("quotas", date(2026, 7, 1))]
    assert list(DirtyDeal.objects.values_list("area", "deal_id")) == [("deals", 424242)]
