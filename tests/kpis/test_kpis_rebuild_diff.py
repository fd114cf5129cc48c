"""The full rebuild over existing rollups: on Postgres it writes only the rows that changed
(see ``services._replace_all``), and the tables still end with exactly the rows of a
rebuild into empty tables, repeated rows included."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.db import connection

from apps.crm.models import Opportunity
from apps.kpis import services
from apps.kpis.models import CloseDateMove, ClosedDealRollup
from tests.kpis.conftest import at

D = Decimal
JULY, AUGUST = date(2024, 7, 1), date(2024, 8, 1)


def snapshot() -> dict[str, list[tuple]]:
    """Every row of every rollup table without its surrogate id, sorted."""
    result = {}
    for model in services.ROLLUP_MODELS:
        fields = [f.attname for f in model._meta.concrete_fields if f.attname != "id"]
        result[model.__name__] = sorted(
            model.objects.values_list(*fields), key=lambda row: tuple(str(v) for v in row)
        )
    return result


def rebuild_from_empty() -> dict[str, list[tuple]]:
    for model in services.ROLLUP_MODELS:
        model.objects.all().delete()
    services.rollups_rebuild()
    return snapshot()


@pytest.mark.django_db
def test_a_rebuild_over_current_rollups_rewrites_only_the_changed_rows(world):
    # given a won deal in July and one in August, rolled up
    w = world
    july = w.deal(owner=w.rep_a, amount="100", stage="won", created=date(2024, 6, 1), close=JULY)
    w.deal(
        owner=w.rep_a,
        amount="200",
        stage="won",
        created=date(2024, 6, 1),
        close=AUGUST,
        account="Beta",
    )
    services.rollups_rebuild()
    ids_before = dict(ClosedDealRollup.objects.values_list("month", "id"))
    # when July's amount changes without going through the update queue, and all is rebuilt
    Opportunity.objects.filter(pk=july.pk).update(amount=D("150"))
    services.rollups_rebuild()
    # then July's row holds the new amount and August's is untouched
    rows = {row.month: row for row in ClosedDealRollup.objects.all()}
    assert (rows[JULY].amount, rows[AUGUST].amount) == (D("150.00"), D("200.00"))
    if connection.vendor == "postgresql":
        # only the changed row was written: the other one is the very same row
        assert rows[AUGUST].pk == ids_before[AUGUST]
        assert rows[JULY].pk != ids_before[JULY]
    # and every table holds exactly what a rebuild into empty tables gives
    kept = snapshot()
    assert rebuild_from_empty() == kept


@pytest.mark.django_db
def test_identical_close_date_moves_are_kept_as_often_as_they_happened(world):
    # given a deal whose close date moved from 1 Aug to 1 Sep twice in the same instant (a
    # replayed import): two identical moves
    w = world
    deal = w.deal(
        owner=w.rep_a, amount="100", stage="propose", created=date(2024, 6, 1), close=AUGUST
    )
    moment = at(date(2024, 7, 10))
    for close in (date(2024, 9, 1), AUGUST, date(2024, 9, 1)):
        deal = w.move(deal, when=moment, close_date=close)
    services.rollups_rebuild()
    moves = CloseDateMove.objects.filter(deal_id=deal.pk)
    assert moves.count() == 2
    expected = snapshot()
    copy = moves.values("deal_id", "owner_id", "changed_at", "old_close", "new_close")[0]
    # when the table holds one copy too many, a rebuild removes exactly one
    CloseDateMove.objects.create(**copy)
    services.rollups_rebuild()
    assert moves.count() == 2
    # when it holds one too few, a rebuild adds exactly one
    moves.filter(pk=moves.order_by("pk").values_list("pk", flat=True)[0]).delete()
    services.rollups_rebuild()
    assert moves.count() == 2
    # then the tables are what they were, and what a rebuild into empty tables gives
    assert snapshot() == expected
    assert rebuild_from_empty() == expected
