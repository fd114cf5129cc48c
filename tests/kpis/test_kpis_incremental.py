"""Incremental updates, coalescing, locking/atomicity of rebuilds, tasks and the command."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.management import call_command

from apps.core.models import JobRun
from apps.core.selectors import last_successful_run
from apps.crm.models import Opportunity
from apps.kpis import services
from apps.kpis.models import (
    AccountMrrRollup,
    CloseDateMove,
    ClosedDealRollup,
    DirtyMonth,
    NpsRollup,
    PipelineRollup,
    QuotaRollup,
    StageEntryRollup,
)
from apps.kpis.selectors import kpi_value
from apps.kpis.tasks import rollups_rebuild_task, rollups_update_task
from tests.kpis.conftest import at
from tests.kpis.test_kpis_property import seed_book

D = Decimal
TABLES = (
    CloseDateMove,
    ClosedDealRollup,
    PipelineRollup,
    StageEntryRollup,
    AccountMrrRollup,
    NpsRollup,
    QuotaRollup,
)


def snapshot() -> dict[str, list[tuple]]:
    """Every rollup row without its id, sorted: comparable across rebuilds."""
    result = {}
    for model in TABLES:
        fields = [f.attname for f in model._meta.concrete_fields if f.attname != "id"]
        result[model.__name__] = sorted(
            model.objects.values_list(*fields), key=lambda row: tuple(str(v) for v in row)
        )
    return result


@pytest.mark.django_db
def test_editing_a_deal_updates_the_kpi_after_commit(world, django_capture_on_commit_callbacks):
    w = world
    deal = w.deal(
        owner=w.rep_a,
        amount="1000",
        stage="propose",
        created=date(2024, 6, 1),
        close=date(2024, 8, 1),
    )
    services.rollups_rebuild()
    assert kpi_value(name="bookings", period="2024-Q3", user=w.cso).value == D("0.00")
    # when the deal is won, inside a transaction whose commit runs the callbacks
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        w.move(deal, when=at(date(2024, 8, 3)), stage="won", close_date=date(2024, 8, 3))
    # then a callback queued the months and the (eager) task recomputed them, in one run
    # (other apps, such as forecasting, add their own commit callbacks for the same edit)
    assert callbacks
    assert kpi_value(name="bookings", period="2024-Q3", user=w.cso).value == D("1000.00")
    assert kpi_value(name="open_pipeline", period="2024-Q3", user=w.cso).value == D("0.00")
    run = JobRun.objects.filter(kind="rollups_incremental").get()
    assert run.status == JobRun.Status.SUCCEEDED and run.rows > 0
    assert "2024-08-01" in run.detail["months"]["deals"]
    assert not DirtyMonth.objects.exists()
    assert last_successful_run() == run


@pytest.mark.django_db
def test_setting_a_quota_updates_attainment(world, django_capture_on_commit_callbacks):
    w = world
    w.deal(
        owner=w.rep_a, amount="1000", stage="won", created=date(2024, 6, 1), close=date(2024, 7, 5)
    )
    services.rollups_rebuild()
    assert (
        kpi_value(name="attainment", period="2024-07", user=w.cso, rep_id=w.rep_a.pk).value is None
    )
    with django_capture_on_commit_callbacks(execute=True):
        w.quota("2024-07", "4000", rep=w.rep_a)
    assert kpi_value(name="attainment", period="2024-07", user=w.cso, rep_id=w.rep_a.pk).value == D(
        "0.25"
    )


@pytest.mark.django_db
def test_a_burst_of_edits_schedules_one_update(
    world, django_capture_on_commit_callbacks, monkeypatch
):
    w = world
    deals = [
        w.deal(
            owner=w.rep_a,
            amount="100",
            stage="prospect",
            created=date(2024, 6, 1),
            close=date(2024, 8, 1),
        )
        for _ in range(5)
    ]
    services.rollups_rebuild()
    scheduled = []
    monkeypatch.setattr(rollups_update_task, "apply_async", lambda **kw: scheduled.append(kw))
    # when five deals are edited, each in its own transaction
    for n, deal in enumerate(deals):
        with django_capture_on_commit_callbacks(execute=True):
            w.move(
                deal, when=at(date(2024, 7, 1 + n)), stage="won", close_date=date(2024, 7, 1 + n)
            )
    # then one task is scheduled (with a countdown) and every month waits in the queue
    assert scheduled == [{"countdown": services.UPDATE_COUNTDOWN_SECONDS}]
    assert set(DirtyMonth.objects.values_list("month", flat=True)) >= {
        date(2024, 7, 1),
        date(2024, 8, 1),
    }
    # when the task runs, one update settles all five edits
    rollups_update_task.run()
    assert kpi_value(name="won_deals", period="2024-07", user=w.cso).value == 5
    assert not DirtyMonth.objects.exists()
    assert cache.get(services.UPDATE_PENDING_KEY) is None
    assert JobRun.objects.filter(kind="rollups_incremental").count() == 1


@pytest.mark.django_db
def test_update_with_nothing_queued_changes_nothing(world):
    w = world
    w.deal(
        owner=w.rep_a, amount="100", stage="won", created=date(2024, 6, 1), close=date(2024, 7, 1)
    )
    services.rollups_rebuild()
    before = snapshot()
    result = services.rollups_update()
    assert result.total_rows == 0
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [11, 12])
def test_incremental_updates_equal_a_full_rebuild(world, django_capture_on_commit_callbacks, seed):
    w = world
    seed_book(w, seed)
    services.rollups_rebuild()
    rng = random.Random(seed)
    deals = list(Opportunity.objects.order_by("id"))
    # when random edits go through the services (stage, amount, close date, owner, quota)
    for deal in rng.sample(deals, 12):
        moment = at(date(2024, 11, rng.randrange(1, 28)))
        change = rng.choice(["stage", "amount", "close", "owner"])
        with django_capture_on_commit_callbacks(execute=True):
            if change == "stage":
                w.move(deal, when=moment, stage=rng.choice(["qualify", "propose", "won", "lost"]))
            elif change == "amount":
                w.move(deal, when=moment, amount=D(100 * rng.randrange(1, 90)))
            elif change == "close":
                w.move(
                    deal,
                    when=moment,
                    close_date=deal.created_date + timedelta(days=rng.randrange(0, 500)),
                )
            else:
                w.move(deal, when=moment, owner=rng.choice([w.rep_a, w.rep_b, w.rep_c]))
    with django_capture_on_commit_callbacks(execute=True):
        w.quota("2024-03", "1234", rep=w.rep_b)
        w.quota("2024-03", "5000", team=w.east)
    incremental = snapshot()
    # then a full rebuild finds exactly the same rows
    services.rollups_rebuild()
    assert snapshot() == incremental


@pytest.mark.django_db
def test_subscription_and_nps_hooks(world):
    w = world
    w.subscription("A", "100", date(2024, 1, 1))
    services.rollups_rebuild()
    assert kpi_value(name="mrr", period="2024-Q3", user=w.cso).value == D("100.00")
    sub = w.subscription("A", "50", date(2024, 8, 15), date(2024, 12, 1))
    w.nps("A", 10, date(2024, 9, 1))
    services.rollups_subscription_changed(start_date=sub.start_date, end_date=sub.end_date)
    services.rollups_nps_changed(responded_on=date(2024, 9, 1))
    assert kpi_value(name="mrr", period="2024-Q3", user=w.cso).value == D("150.00")
    assert kpi_value(name="mrr", period="2024-Q4", user=w.cso).value == D("100.00")
    assert kpi_value(name="nps", period="2024-Q3", user=w.cso).value == D("100")
    incremental = snapshot()
    services.rollups_rebuild()
    assert snapshot() == incremental


@pytest.mark.django_db
def test_marking_an_unknown_area_is_refused(world):
    with pytest.raises(services.ApplicationError, match="Unknown rollup area"):
        services.rollups_mark_dirty(area="weather", months=[date(2024, 1, 1)])
    assert not DirtyMonth.objects.exists()


@pytest.mark.django_db
def test_a_failing_rebuild_leaves_the_previous_rollups(world, monkeypatch):
    w = world
    w.deal(
        owner=w.rep_a, amount="100", stage="won", created=date(2024, 6, 1), close=date(2024, 7, 1)
    )
    w.subscription("A", "100", date(2024, 1, 1))
    services.rollups_rebuild()
    before = snapshot()
    w.deal(
        owner=w.rep_a, amount="900", stage="won", created=date(2024, 6, 1), close=date(2024, 7, 2)
    )

    # when the rebuild dies after the deal tables were already rewritten
    def boom(months):
        raise RuntimeError("worker lost half-way")

    monkeypatch.setattr(services, "_build_mrr", boom)
    with pytest.raises(RuntimeError):
        services.rollups_rebuild()
    # then readers still see the old rollups, and the failed run is on record
    assert snapshot() == before
    failed = JobRun.objects.filter(kind="rollups_full").order_by("-started_at").first()
    assert failed.status == JobRun.Status.FAILED and "half-way" in failed.error


@pytest.mark.django_db
def test_tasks_and_command_run_the_same_service(world, capsys):
    w = world
    w.deal(
        owner=w.rep_a, amount="100", stage="won", created=date(2024, 6, 1), close=date(2024, 7, 1)
    )
    assert rollups_rebuild_task.run() > 0
    ClosedDealRollup.objects.all().delete()
    call_command("rebuild_rollups", verbosity=2)
    out = capsys.readouterr().out
    assert "closed: 1 rows" in out and "Rebuilt" in out
    assert JobRun.objects.filter(kind="rollups_full", status="succeeded").count() == 2
    assert kpi_value(name="bookings", period="2024-07", user=w.cso).value == D("100.00")


@pytest.mark.django_db
def test_command_reports_a_missing_rate_clearly(world):
    w = world
    w.deal(
        owner=w.rep_a,
        amount="100",
        currency="SEK",
        stage="won",
        created=date(2024, 6, 1),
        close=date(2024, 7, 1),
    )
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No SEK->USD exchange rate on or before 2024-07-01"):
        call_command("rebuild_rollups", verbosity=0)


@pytest.mark.django_db
def test_an_amount_edit_leaves_stage_history_alone(
    world, django_capture_on_commit_callbacks, monkeypatch
):
    w = world
    deal = w.deal(
        owner=w.rep_a,
        amount="100",
        stage="prospect",
        created=date(2024, 5, 1),
        close=date(2024, 8, 1),
    )
    services.rollups_rebuild()
    monkeypatch.setattr(rollups_update_task, "apply_async", lambda **kw: None)
    # an amount edit queues the close month only; stage entries need no recompute
    with django_capture_on_commit_callbacks(execute=True):
        w.move(deal, when=at(date(2024, 6, 3)), amount=D("250"))
    assert set(DirtyMonth.objects.values_list("area", "month")) == {("deals", date(2024, 8, 1))}
    DirtyMonth.objects.all().delete()
    # a stage edit also queues every month of the deal's history
    with django_capture_on_commit_callbacks(execute=True):
        w.move(deal, when=at(date(2024, 7, 3)), stage="qualify")
    assert set(DirtyMonth.objects.values_list("area", "month")) == {
        ("deals", date(2024, 8, 1)),
        ("stages", date(2024, 5, 1)),
        ("stages", date(2024, 6, 1)),
        ("stages", date(2024, 7, 1)),
    }
