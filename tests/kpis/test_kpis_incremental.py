"""Incremental updates, coalescing, locking/atomicity of rebuilds, tasks and the command."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import transaction

from apps.core.models import JobRun
from apps.core.selectors import last_successful_run
from apps.crm.models import Opportunity, Stage
from apps.kpis import services
from apps.kpis.models import (
    AccountMrrRollup,
    CloseDateMove,
    ClosedDealRollup,
    DealFootprint,
    DirtyDeal,
    DirtyMonth,
    NpsRollup,
    PipelineRollup,
    QuotaRollup,
    SlippedDealRollup,
    StageEntryRollup,
)
from apps.kpis.selectors import (
    KpiFilters,
    _slipped,
    _slipped_from_moves,
    kpi_value,
    period_parse,
    scope_resolve,
)
from apps.kpis.tasks import rollups_rebuild_task, rollups_update_task
from tests.kpis.conftest import at
from tests.kpis.test_kpis_property import seed_book

D = Decimal
TABLES = (
    CloseDateMove,
    ClosedDealRollup,
    PipelineRollup,
    StageEntryRollup,
    SlippedDealRollup,
    DealFootprint,
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
    # only the deal's own (month, owner) cells were recomputed, not whole months
    assert run.detail["deals"] == [deal.pk]
    assert run.detail["cells"]["deals"] == {str(w.rep_a.pk): ["2024-08"]}
    assert run.detail["months"] == {}
    assert not DirtyMonth.objects.exists() and not DirtyDeal.objects.exists()
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
    # then one task is scheduled (with a countdown) and every deal waits in the queue
    assert scheduled == [{"countdown": services.UPDATE_COUNTDOWN_SECONDS}]
    assert set(DirtyDeal.objects.values_list("deal_id", flat=True)) == {d.pk for d in deals}
    # when the task runs, one update settles all five edits
    rollups_update_task.run()
    assert kpi_value(name="won_deals", period="2024-07", user=w.cso).value == 5
    assert kpi_value(name="open_pipeline", period="2024-08", user=w.cso).value == D("0.00")
    assert not DirtyMonth.objects.exists() and not DirtyDeal.objects.exists()
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


def _delete_deal(deal: Opportunity) -> None:
    """Delete a deal as a delete service would: the rollup hook after the commit."""
    with transaction.atomic():
        Opportunity.objects.filter(pk=deal.pk).delete()
        transaction.on_commit(lambda: services.rollups_deal_changed(opportunity_id=deal.pk))


def _random_edits(w, rng: random.Random, count: int, capture) -> list[str]:
    """``count`` random edits through the services, each committed on its own."""
    done = []
    accounts = list(w.accounts.values())
    for _ in range(count):
        deals = list(Opportunity.objects.order_by("id"))
        deal = rng.choice(deals)
        moment = at(date(2024, rng.randrange(1, 12), rng.randrange(1, 28)))
        change = rng.choice(
            ["stage", "won", "amount", "close", "slip", "owner", "currency", "account", "type"]
            + ["delete"] * (len(deals) > 30)
        )
        with capture(execute=True):
            if change == "stage":
                w.move(deal, when=moment, stage=rng.choice(["qualify", "propose", "won", "lost"]))
            elif change == "won":
                close = max(deal.created_date, moment.date())
                w.move(deal, when=moment, stage="won", close_date=close)
            elif change == "amount":
                w.move(deal, when=moment, amount=D(100 * rng.randrange(1, 90)))
            elif change == "close":
                # anywhere, often into another month (and another quarter)
                days = rng.randrange(0, 500)
                w.move(deal, when=moment, close_date=deal.created_date + timedelta(days=days))
            elif change == "slip":
                # out of the month it was due in, as slipped deals are counted
                later = max(deal.close_date, deal.created_date) + timedelta(
                    days=rng.randrange(20, 120)
                )
                w.move(deal, when=moment, close_date=later)
            elif change == "owner":
                w.move(deal, when=moment, owner=rng.choice([w.rep_a, w.rep_b, w.rep_c]))
            elif change == "currency":
                w.move(deal, when=moment, currency=rng.choice(["USD", "EUR", "GBP"]))
            elif change == "account":
                w.move(deal, when=moment, account=rng.choice(accounts))
            elif change == "type":
                w.move(
                    deal,
                    when=moment,
                    deal_type=rng.choice(["new", "expansion", "renewal"]),
                    product=rng.choice([w.product_x, w.product_y, None]),
                )
            else:
                _delete_deal(deal)
        done.append(change)
    return done


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_incremental_updates_equal_a_full_rebuild(world, django_capture_on_commit_callbacks, seed):
    w = world
    seed_book(w, seed)
    services.rollups_rebuild()
    rng = random.Random(seed)
    # when random edits go through the services: stage, won, amount, close date (across
    # months), slips, owner, currency, account, type/product, deletes; and quotas
    done = _random_edits(w, rng, 25, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        w.quota("2024-03", "1234", rep=w.rep_b)
        w.quota("2024-03", "5000", team=w.east)
    incremental = snapshot()
    assert not DirtyDeal.objects.exists()
    assert {"owner", "close", "slip", "stage"} & set(done)
    # then a full rebuild finds exactly the same rows
    services.rollups_rebuild()
    assert snapshot() == incremental


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [21, 22])
def test_a_coalesced_burst_equals_a_full_rebuild(
    world, django_capture_on_commit_callbacks, monkeypatch, seed
):
    w = world
    seed_book(w, seed)
    services.rollups_rebuild()
    monkeypatch.setattr(rollups_update_task, "apply_async", lambda **kw: None)
    # when many edits (some to the same deal, a delete among them) wait for one update
    _random_edits(w, random.Random(seed), 30, django_capture_on_commit_callbacks)
    assert DirtyDeal.objects.exists()
    result = services.rollups_update()
    # then that one update equals a full rebuild, and running it again changes nothing
    incremental = snapshot()
    assert result.total_rows > 0
    assert services.rollups_update().total_rows == 0
    assert snapshot() == incremental
    services.rollups_rebuild()
    assert snapshot() == incremental


@pytest.mark.django_db
def test_an_edit_recomputes_only_its_owners_cells(world, django_capture_on_commit_callbacks):
    w = world
    kept = w.deal(
        owner=w.rep_b, amount="300", stage="won", created=date(2024, 6, 1), close=date(2024, 8, 5)
    )
    deal = w.deal(
        owner=w.rep_a,
        amount="100",
        stage="propose",
        created=date(2024, 6, 1),
        close=date(2024, 8, 1),
        account="Other",
    )
    services.rollups_rebuild()
    other_rows = set(ClosedDealRollup.objects.filter(owner=w.rep_b).values_list("id", flat=True))
    assert other_rows
    # when rep_a's deal moves to rep_c, is won and closes in September
    with django_capture_on_commit_callbacks(execute=True):
        w.move(
            deal, when=at(date(2024, 9, 2)), owner=w.rep_c, stage="won", close_date=date(2024, 9, 2)
        )
    # then rep_b's rows of the same month were not rewritten, rep_a lost the deal
    assert set(ClosedDealRollup.objects.filter(owner=w.rep_b).values_list("id", flat=True)) == (
        other_rows
    )
    assert not PipelineRollup.objects.filter(owner=w.rep_a).exists()
    assert kpi_value(name="bookings", period="2024-09", user=w.cso, rep_id=w.rep_c.pk).value == D(
        "100.00"
    )
    run = JobRun.objects.filter(kind="rollups_incremental").get()
    assert run.detail["cells"]["deals"] == {
        str(w.rep_a.pk): ["2024-08"],
        str(w.rep_c.pk): ["2024-09"],
    }
    assert str(w.rep_b.pk) not in run.detail["cells"]["stages"]
    assert kept.pk not in run.detail["deals"]


@pytest.mark.django_db
def test_moving_a_deal_to_another_account_moves_the_new_logo(
    world, django_capture_on_commit_callbacks
):
    w = world
    first = w.deal(
        owner=w.rep_a, amount="100", stage="won", created=date(2024, 1, 1), close=date(2024, 2, 1)
    )
    w.deal(
        owner=w.rep_b, amount="200", stage="won", created=date(2024, 1, 1), close=date(2024, 5, 1)
    )
    services.rollups_rebuild()
    assert kpi_value(name="new_logos", period="2024-05", user=w.cso).value == 0
    # when Acme's first win moves to another account (history does not track accounts)
    with django_capture_on_commit_callbacks(execute=True):
        w.move(first, when=at(date(2024, 6, 1)), account=w.account("Beta"))
    # then Acme's next win, another owner's deal in another month, is now its new logo
    assert kpi_value(name="new_logos", period="2024-05", user=w.cso).value == 1
    assert kpi_value(name="new_logos", period="2024-02", user=w.cso).value == 1
    incremental = snapshot()
    services.rollups_rebuild()
    assert snapshot() == incremental


@pytest.mark.django_db
def test_deleting_a_deal_clears_its_cells(world, django_capture_on_commit_callbacks):
    w = world
    deal = w.deal(
        owner=w.rep_a,
        amount="100",
        stage="qualify",
        created=date(2024, 6, 1),
        close=date(2024, 8, 1),
    )
    w.move(deal, when=at(date(2024, 8, 20)), close_date=date(2024, 10, 15))
    services.rollups_rebuild()
    assert kpi_value(name="slipped_deals", period="2024-Q3", user=w.cso).value == 1
    assert kpi_value(name="open_pipeline", period="2024-Q4", user=w.cso).value == D("100.00")
    # when the deal is deleted (its history goes with it)
    with django_capture_on_commit_callbacks(execute=True):
        _delete_deal(deal)
    # then the footprint led the update to every cell the deal was in
    assert kpi_value(name="slipped_deals", period="2024-Q3", user=w.cso).value == 0
    assert kpi_value(name="open_pipeline", period="2024-Q4", user=w.cso).value == D("0.00")
    assert not StageEntryRollup.objects.exists()
    assert not CloseDateMove.objects.exists() and not DealFootprint.objects.exists()


PERIOD_NAMES = [
    *(f"{y}-{m:02d}" for y in (2023, 2024) for m in range(1, 13)),
    *(f"{y}-Q{q}" for y in (2023, 2024) for q in range(1, 5)),
    "FY2023",
    "FY2024",
    "FY2025",
]


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [31, 32])
def test_slipped_rollup_equals_the_detail_query(world, django_capture_on_commit_callbacks, seed):
    w = world
    seed_book(w, seed)
    services.rollups_rebuild()
    _random_edits(w, random.Random(seed), 15, django_capture_on_commit_callbacks)
    periods = [period_parse(name) for name in PERIOD_NAMES]
    scopes = [
        scope_resolve(user=w.cso),
        scope_resolve(user=w.cso, team_id=w.east.pk),
        scope_resolve(user=w.cso, rep_id=w.rep_a.pk),
    ]
    filters = [
        KpiFilters(),
        KpiFilters(region=w.eu.pk),
        KpiFilters(segment="smb"),
        KpiFilters(product=w.product_x.pk),
        KpiFilters(deal_type="new", region=w.na.pk),
    ]
    counted = 0
    for scope in scopes:
        for f in filters:
            # the rollup (incrementally updated) against the detail query over moves
            rollup = _slipped(scope, f, periods)
            assert rollup == _slipped_from_moves(scope, f, periods), (scope, f)
            counted += sum(rollup.values())
    assert counted > 0


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
    def boom(months, **_options):
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
    # an amount edit queues the deal's closed/pipeline cells only
    with django_capture_on_commit_callbacks(execute=True):
        w.move(deal, when=at(date(2024, 6, 3)), amount=D("250"))
    assert set(DirtyDeal.objects.values_list("area", "deal_id")) == {("deals", deal.pk)}
    cells = services.deal_cells(deal_ids=[deal.pk], stage_ids=[])
    assert cells.deals == {w.rep_a.pk: {date(2024, 8, 1)}}
    assert not cells.stages and not cells.slipped
    DirtyDeal.objects.all().delete()
    # a stage edit also queues its stage history: every month of it, and every slipped-deal
    # period holding one of those months
    with django_capture_on_commit_callbacks(execute=True):
        w.move(deal, when=at(date(2024, 7, 3)), stage="qualify")
    assert set(DirtyDeal.objects.values_list("area", "deal_id")) == {
        ("deals", deal.pk),
        ("stages", deal.pk),
    }
    cells = services.deal_cells(deal_ids=[deal.pk], stage_ids=[deal.pk])
    history_months = {date(2024, 5, 1), date(2024, 6, 1), date(2024, 7, 1)}
    assert cells.stages == {w.rep_a.pk: history_months}
    assert (date(2024, 7, 1), 1) in cells.slipped[w.rep_a.pk]
    assert (date(2023, 8, 1), 12) in cells.slipped[w.rep_a.pk]
    assert (date(2023, 5, 1), 12) not in cells.slipped[w.rep_a.pk]
    assert not DirtyMonth.objects.exists()


@pytest.mark.django_db
def test_deal_cells_and_whole_months_in_one_update(
    world, django_capture_on_commit_callbacks, monkeypatch
):
    w = world
    deal = w.deal(
        owner=w.rep_a,
        amount="100",
        stage="propose",
        created=date(2024, 6, 1),
        close=date(2024, 8, 1),
    )
    w.deal(
        owner=w.rep_b, amount="200", stage="won", created=date(2024, 6, 1), close=date(2024, 9, 9)
    )
    services.rollups_rebuild()
    monkeypatch.setattr(rollups_update_task, "apply_async", lambda **kw: None)
    # when a deal moves to another owner and month, and its new month is also queued whole
    # (as a bulk import queues months), before one update runs
    with django_capture_on_commit_callbacks(execute=True):
        w.move(deal, when=at(date(2024, 7, 2)), owner=w.rep_c, close_date=date(2024, 9, 20))
    services.rollups_mark_dirty(area="deals", months=[date(2024, 9, 1)])
    services.rollups_update()
    # then its old cell (rep_a, August) was cleared too: the rows equal a full rebuild
    assert not PipelineRollup.objects.filter(owner=w.rep_a).exists()
    incremental = snapshot()
    services.rollups_rebuild()
    assert snapshot() == incremental


@pytest.mark.django_db
def test_the_pipeline_rollup_follows_the_stages_outcomes_at_rebuild(world):
    w = world
    w.deal(
        owner=w.rep_a,
        amount="100",
        stage="propose",
        created=date(2024, 6, 1),
        close=date(2024, 8, 1),
    )
    services.rollups_rebuild()
    assert PipelineRollup.objects.filter(owner=w.rep_a).exists()
    # When every stage is made a closing one (the builder reads the open stage ids anew)
    Stage.objects.update(outcome=Stage.Outcome.LOST, probability=0)
    services.rollups_rebuild()
    # Then no deal is open pipeline any more
    assert not PipelineRollup.objects.exists()
